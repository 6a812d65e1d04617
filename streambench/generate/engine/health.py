"""The run's own health, recorded beside its events: is the generator keeping up?

Schedule lag (how late each message left) is exact in every send row
(``sent_ns - intended_ns``). What the rows cannot show is recorded here, once
a second per process (docs/analysis.md#process-health-rows):

* **event-loop stalls**: a task on the loop (``health.tick``) wakes every
  10 ms and notes how late it woke; the longest delay of each interval is
  ``loop_stall_ms``. A stall of 10 ms or more is always seen, even when no
  message was due during it. Its cost: a hundred timer wake-ups a second;
* **CPU, memory, open files** of the client process (and of the built-in
  target): read by a sampling thread from /proc (psutil), never on the loop;
* **parts written** so far and **connections** open (connects minus
  disconnects recorded up to the last flush): counters the loop keeps anyway.

The sampling thread hands the rows to a
:class:`~streambench.capture.health.HealthWriter`, which writes them as parts
of the run's ``health`` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from streambench.capture.health import HealthWriter

TICK_S = 0.01  # the loop-stall probe's period
SAMPLE_S = 1.0  # one health row per process per interval


class LoopStalls:
    """The longest lateness of a periodic tick on the event loop, per interval."""

    def __init__(self) -> None:
        self.worst_ns = 0

    async def tick(self) -> None:
        """Run as a task on the loop being watched, until cancelled."""
        period_ns = int(TICK_S * 1e9)
        while True:
            due = time.monotonic_ns() + period_ns
            await asyncio.sleep(TICK_S)
            late = time.monotonic_ns() - due
            self.worst_ns = max(self.worst_ns, late)

    def take(self) -> float:
        """The longest stall (ms) since the last call; resets it (called by the sampler)."""
        worst, self.worst_ns = self.worst_ns, 0
        return worst / 1e6


@dataclass
class Watched:
    """One process the sampler reports on, and where its extra figures come from."""

    source: str  # "client" | "target"
    worker: int | None
    pid: int
    stalls: LoopStalls | None = None
    parts: Callable[[], int] | None = None
    connections: Callable[[], int] | None = None
    process: Any = field(default=None, repr=False)
    last_cpu_s: float = 0.0


class HealthSampler:
    """A thread that adds one row per watched process every ``interval_s``."""

    def __init__(self, writer: HealthWriter, watched: list[Watched], *,
                 interval_s: float = SAMPLE_S) -> None:
        self.writer = writer
        self.watched = [w for w in watched if _attach(w)]
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health.sampler", daemon=True)
        self._last_ns = time.monotonic_ns()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample, write everything buffered, end the thread."""
        self._stop.set()
        self._thread.join()
        self.writer.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()
        self.sample()

    def sample(self) -> None:
        now = time.monotonic_ns()
        interval_s, self._last_ns = (now - self._last_ns) / 1e9, now
        ts = time.time_ns()
        for w in list(self.watched):
            try:
                self.writer.add(_row(w, ts=ts, interval_s=interval_s))
            except psutil.Error:  # the process is gone (a target that exited)
                self.watched.remove(w)


def _attach(w: Watched) -> bool:
    try:
        w.process = psutil.Process(w.pid)
        times = w.process.cpu_times()
    except psutil.Error:
        return False
    w.last_cpu_s = times.user + times.system
    return True


def _row(w: Watched, *, ts: int, interval_s: float) -> dict[str, Any]:
    process = w.process
    with process.oneshot():
        times = process.cpu_times()
        rss = process.memory_info().rss
        files = process.num_fds()
    cpu_s = times.user + times.system
    used, w.last_cpu_s = cpu_s - w.last_cpu_s, cpu_s
    return {
        "ts": ts, "interval_s": interval_s, "source": w.source, "worker": w.worker,
        "pid": w.pid, "rss_bytes": rss, "open_files": files, "cpu_s": max(used, 0.0),
        "parts_written": w.parts() if w.parts else None,
        "loop_stall_ms": w.stalls.take() if w.stalls else None,
        "connections": w.connections() if w.connections else None,
    }  # fmt: skip


@contextlib.contextmanager
def sampling(writer: HealthWriter, watched: list[Watched], *,
             interval_s: float = SAMPLE_S) -> Iterator[HealthSampler]:
    """Sample ``watched`` while the block runs; everything is written when it ends."""
    sampler = HealthSampler(writer, watched, interval_s=interval_s)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
