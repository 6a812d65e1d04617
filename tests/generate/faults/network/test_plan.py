"""The network fault plan and shapers without sockets: seeded, ordered, windowed."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from streambench.generate.faults.network.plan import Change, NetworkPlan, windows
from streambench.generate.faults.network.shape import (
    Bandwidth,
    Close,
    CloseAfter,
    Effect,
    Latency,
    Shaper,
    Slicer,
)
from streambench.scenario.network import NetworkFault

NS = 1_000_000_000
MS = 1_000_000
FAULTS = TypeAdapter(tuple[NetworkFault, ...])


def plan(*faults: dict[str, Any], seed: int = 1) -> NetworkPlan:
    return NetworkPlan(FAULTS.validate_python(faults), seed=seed)


def first(changes: object, n: int) -> list[Change]:
    return list(itertools.islice(changes, n))  # type: ignore[call-overload]


# -- windows and the timeline ----------------------------------------------------------
def test_a_window_opens_at_at_and_closes_after_for() -> None:
    p = plan({"kind": "latency", "delay": "10ms", "at": "2s", "for": "500ms"})
    assert list(p.timeline()) == [Change(2 * NS, True, 0, 0), Change(2500 * MS, False, 0, 0)]


def test_without_for_a_window_lasts_until_the_end() -> None:
    p = plan({"kind": "blackhole", "at": "1s"})
    assert list(p.timeline()) == [Change(NS, True, 0, 0)]


def test_every_repeats_the_window_and_the_timeline_stays_in_time_order() -> None:
    p = plan({"kind": "bandwidth", "rate": "1KB/s", "at": "1s", "for": "1s", "every": "3s"},
             {"kind": "reset", "at": "500ms", "every": "2s"})
    changes = first(p.timeline(), 12)
    assert [c.offset_ns for c in changes] == sorted(c.offset_ns for c in changes)
    bandwidth = [(c.offset_ns / NS, c.opening, c.window) for c in changes if c.index == 0]
    assert bandwidth[:4] == [(1.0, True, 0), (2.0, False, 0), (4.0, True, 1), (5.0, False, 1)]
    resets = [c for c in changes if c.index == 1]
    assert all(c.opening for c in resets)  # an instant: no closing change
    assert [c.offset_ns / NS for c in resets][:3] == [0.5, 2.5, 4.5]


def test_a_close_sorts_before_an_open_at_the_same_instant() -> None:
    p = plan({"kind": "refuse", "at": "0s", "for": "1s", "every": "1s"})
    changes = first(p.timeline(), 4)
    assert [(c.offset_ns, c.opening) for c in changes] == [
        (0, True), (NS, False), (NS, True), (2 * NS, False)]


def test_window_lengths_of_instant_and_open_faults() -> None:
    reset = FAULTS.validate_python([{"kind": "reset", "at": "3s"}])[0]
    assert list(windows(reset)) == [(3 * NS, 3 * NS)]


# -- which connections ---------------------------------------------------------------------
def test_share_picks_a_seeded_fraction_of_connections() -> None:
    p = plan({"kind": "blackhole", "share": 0.3})
    picked = [p.picks(0, conn) for conn in range(2000)]
    assert picked == [plan({"kind": "blackhole", "share": 0.3}).picks(0, c) for c in range(2000)]
    assert sum(picked) == pytest.approx(600, abs=80)
    other = plan({"kind": "blackhole", "share": 0.3}, seed=2)
    assert picked != [other.picks(0, c) for c in range(2000)]


def test_adding_a_fault_leaves_the_picks_of_another_untouched() -> None:
    alone = plan({"kind": "reset", "share": 0.5})
    together = plan({"kind": "reset", "share": 0.5}, {"kind": "blackhole", "share": 0.5})
    assert [alone.picks(0, c) for c in range(500)] == [together.picks(0, c) for c in range(500)]


def test_refuse_applies_to_every_connection() -> None:
    p = plan({"kind": "refuse", "at": "1s", "for": "1s"})
    assert all(p.picks(0, c) for c in range(100))


# -- draws per chunk --------------------------------------------------------------------
def test_latency_draws_stay_within_delay_plus_jitter() -> None:
    p = plan({"kind": "latency", "delay": "20ms", "jitter": "10ms"})
    delays = [p.delay_ns(0, 3, chunk) for chunk in range(1000)]
    assert min(delays) >= 20 * MS
    assert max(delays) <= 30 * MS
    assert len(set(delays)) > 900  # spread, not a constant
    assert delays == [p.delay_ns(0, 3, chunk) for chunk in range(1000)]


@given(length=st.integers(0, 5000), size=st.integers(1, 64), chunk=st.integers(0, 1000),
       variation_share=st.floats(0, 0.99))
def test_slices_cover_the_chunk_exactly_within_the_size_bounds(length: int, size: int, chunk: int,
                                                               variation_share: float) -> None:
    variation = int(size * variation_share)
    p = plan({"kind": "slicer", "size": size, "variation": variation})
    sizes = p.slice_sizes(0, 1, chunk, length)
    assert sum(sizes) == length
    assert all(1 <= s <= size + variation for s in sizes)
    assert all(s >= size - variation for s in sizes[:-1])


# -- shapers ------------------------------------------------------------------------------
def test_a_plain_shaper_passes_bytes_through_at_once() -> None:
    shaper = Shaper()
    assert shaper.plain
    assert shaper.feed(5, b"abc") == [(5, b"abc")]


def test_latency_delays_every_chunk_and_the_close_behind_them() -> None:
    shaper = Shaper()
    shaper.add(Latency(0, 0, delays=lambda chunk: (10 + chunk) * MS))
    assert shaper.feed(0, b"a") == [(10 * MS, b"a")]
    assert shaper.feed(1 * MS, b"b") == [(12 * MS, b"b")]
    assert shaper.close(2 * MS) == [(13 * MS, Close("eof"))]
    effect = shaper.remove(0)
    assert effect is not None
    assert (effect.bytes, effect.chunks, effect.first_ns, effect.last_ns) == (2, 2, 0, 12 * MS)


def test_jitter_never_reorders_the_stream() -> None:
    shaper = Shaper()
    shaper.add(Latency(0, 0, delays=lambda chunk: 50 * MS if chunk == 0 else 1 * MS))
    out = shaper.feed(0, b"first") + shaper.feed(2 * MS, b"second")
    assert [what for _, what in out] == [b"first", b"second"]
    assert out[1][0] >= out[0][0]


def test_bandwidth_spaces_bytes_at_its_rate() -> None:
    shaper = Shaper()
    shaper.add(Bandwidth(0, 0, rate=1000.0))  # 10-byte pieces (10 ms worth)
    out = shaper.feed(0, b"x" * 100)
    assert len(out) == 10
    assert out[-1][0] == 100 * MS  # 100 bytes at 1000 B/s
    later = shaper.feed(50 * MS, b"y" * 10)  # queued behind the first 100 bytes
    assert later == [(110 * MS, b"y" * 10)]


def test_slicer_cuts_a_chunk_into_slices_delay_apart() -> None:
    shaper = Shaper()
    shaper.add(Slicer(0, 0, sizes=lambda chunk, length: [4] * (length // 4), delay_ns=MS))
    out = shaper.feed(0, b"abcdefghijkl")
    assert out == [(0, b"abcd"), (MS, b"efgh"), (2 * MS, b"ijkl")]
    assert shaper.feed(0, b"mnop") == [(3 * MS, b"mnop")]


def test_close_after_passes_the_limit_then_cuts() -> None:
    shaper = Shaper()
    shaper.add(CloseAfter(0, 0, limit=5))
    assert shaper.feed(0, b"abc") == [(0, b"abc")]
    assert shaper.feed(1, b"defg") == [(1, b"de"), (1, Close("cut"))]
    assert shaper.feed(2, b"more") == []


def test_a_dark_direction_swallows_everything_for_good() -> None:
    shaper = Shaper()
    effect = shaper.go_dark()
    assert shaper.feed(0, b"gone") == []
    assert shaper.close(1) == []
    assert effect.bytes == 4
    assert not shaper.plain


def test_slow_close_delays_only_the_close() -> None:
    shaper = Shaper()
    shaper.slow[0] = (2 * NS, Effect())
    assert shaper.feed(0, b"data") == [(0, b"data")]
    assert shaper.close(10) == [(2 * NS + 10, Close("eof"))]
    effect = shaper.remove(0)
    assert effect is not None
    assert (effect.first_ns, effect.last_ns) == (10, 2 * NS + 10)


def test_stages_apply_in_a_fixed_order_whatever_order_they_came_in() -> None:
    shaper = Shaper()
    shaper.add(Latency(1, 0, delays=lambda chunk: 5 * MS))
    shaper.add(CloseAfter(0, 0, limit=2))
    out = shaper.feed(0, b"abc")
    assert out == [(5 * MS, b"ab"), (5 * MS, Close("cut"))]  # cut first, then delayed
