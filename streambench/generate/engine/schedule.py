"""Open-model arrival schedules: when each message *should* be sent.

Pure and seeded: no clock, no I/O. A schedule is an iterator of intended send
offsets in nanoseconds from the start of the run. Senders never wait for
replies before sending the next message; latency is measured from these
intended times, so a server that stalls shows up in the percentiles instead
of slowing the senders down (no coordinated omission).

The load is split over connections without changing its shape:

* constant / stages: message ``k`` of connection ``c`` is global message
  ``k * n + c``; with ``Λ(t)`` the cumulative expected count of the profile
  it is sent when ``Λ(t) = k * n + c``. The union over connections is exactly
  the global schedule.
* poisson: each connection is an independent Poisson process at ``λ(t) / n``
  (by thinning a homogeneous one); their superposition is Poisson at ``λ(t)``.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator, Sequence

from streambench.scenario.model import Load, Stage

NS = 1_000_000_000


Segment = tuple[float, float, float, float]  # (start_s, duration_s, rate_at_start, rate_at_end)


def _segments(profile: Sequence[Stage]) -> tuple[Segment, ...]:
    """(start_s, duration_s, rate_at_start, rate_at_end) per stage."""
    segments = []
    start = 0.0
    for stage in profile:
        end_rate = stage.rate if stage.to is None else stage.to
        segments.append((start, stage.duration, stage.rate, end_rate))
        start += stage.duration
    return tuple(segments)


@functools.lru_cache(maxsize=16)
def _load_segments(load: Load) -> tuple[Segment, ...]:
    # One copy per load, not per connection: a run holds a schedule per connection
    # (100,000 of them), each of which would otherwise keep its own stages.
    return _segments(load.profile())


def expected_count(profile: Sequence[Stage]) -> float:
    """Messages the profile asks for in total (the integral of its rate)."""
    return sum(d * (r0 + r1) / 2 for _, d, r0, r1 in _segments(profile))


def _solve_in_segment(need: float, duration: float, r0: float, r1: float) -> float:
    """Time t in [0, duration] with integral_0^t rate = need (rate linear r0 -> r1)."""
    slope = (r1 - r0) / duration
    if abs(slope) < 1e-12:
        return need / r0
    # r0 t + slope t^2 / 2 = need  ->  stable root of the quadratic
    disc = max(r0 * r0 + 2 * slope * need, 0.0)
    return 2 * need / (r0 + math.sqrt(disc))


def deterministic(profile: Sequence[Stage], *, conn: int = 0, connections: int = 1
                  ) -> Iterator[int]:
    """Evenly spaced arrivals following the profile (constant, ramps, steps)."""
    return _deterministic(_segments(profile), conn=conn, connections=connections)


def _deterministic(segments: tuple[Segment, ...], *, conn: int, connections: int
                   ) -> Iterator[int]:
    index = conn  # global message number this connection sends next
    done = 0.0  # messages the profile held before the current segment
    for start, duration, r0, r1 in segments:
        in_segment = duration * (r0 + r1) / 2
        # +0.5: message k sits in the middle of its slot, so a 1 s stage at
        # 10 msg/s sends at 0.05, 0.15, ... and never at the boundary.
        if r0 == r1:  # a constant rate: _solve_in_segment's first case, without the call
            while index + 0.5 <= done + in_segment:
                yield round((start + (index + 0.5 - done) / r0) * NS)
                index += connections
        while index + 0.5 <= done + in_segment:
            offset = _solve_in_segment(index + 0.5 - done, duration, r0, r1)
            yield round((start + offset) * NS)
            index += connections
        done += in_segment


def poisson(profile: Sequence[Stage], *, seed: int, conn: int = 0, connections: int = 1
            ) -> Iterator[int]:
    """Poisson arrivals at rate(t) / connections for one connection (seeded)."""
    return _poisson(_segments(profile), seed=seed, conn=conn, connections=connections)


def _poisson(segments: tuple[Segment, ...], *, seed: int, conn: int, connections: int
             ) -> Iterator[int]:
    rng = random.Random(f"{seed}:{conn}")
    for start, duration, r0, r1 in segments:
        peak = max(r0, r1) / connections
        if peak <= 0:
            continue
        t = 0.0
        while True:
            t += rng.expovariate(peak)
            if t >= duration:
                break
            rate_here = (r0 + (r1 - r0) * t / duration) / connections
            if rng.random() * peak <= rate_here:  # thinning for ramps
                yield round((start + t) * NS)


def schedule(load: Load, *, seed: int, conn: int, connections: int | None = None
             ) -> Iterator[int]:
    """Intended send offsets (ns from run start) for one connection of a load."""
    n = connections or load.connections
    if not 0 <= conn < n:
        raise ValueError(f"connection {conn} is outside 0..{n - 1}")
    segments = _load_segments(load)
    if load.arrival == "poisson":
        return _poisson(segments, seed=seed, conn=conn, connections=n)
    return _deterministic(segments, conn=conn, connections=n)
