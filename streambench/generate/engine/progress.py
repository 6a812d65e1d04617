"""Live progress of a run, computed from each batch of rows as it is written.

Each flush hands its batch to the capture writer; once the writer thread has
turned it into an Arrow table it calls :meth:`ProgressTracker.update_table`,
which counts and measures the batch vectorised, so a progress report costs the
event loop nothing however high the rate. The p95 shown live is of the last
interval only (exact, nearest rank, over that interval's replies), and says
so: the run's own percentiles come from the store afterwards.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streambench.capture.schema import KIND_NAMES, Kind
from streambench.stats import percentile

_kind = itemgetter(0)
_KIND_CODES = {name: code for code, name in enumerate(KIND_NAMES)}


@dataclass(frozen=True)
class Progress:
    elapsed_s: float
    total_s: float
    sent: int
    received: int
    errors: int
    timeouts: int
    rate: float  # sent/s over the last interval
    p95_ms: float | None  # over the last interval
    lag_ms: float | None  # worst schedule lag over the last interval
    final: bool = False
    pushes: int = 0  # messages the server pushed (push rows)

    def line(self) -> str:
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.1f}"
        lag = "-" if self.lag_ms is None else f"{self.lag_ms:.1f}"
        pushes = f"  push {self.pushes:>9}" if self.pushes else ""
        return (f"{self.elapsed_s:6.1f}/{self.total_s:.0f}s  rate {self.rate:8.0f}/s  "
                f"sent {self.sent:>9}  recv {self.received:>9}{pushes}  err {self.errors:>6}  "
                f"timeout {self.timeouts:>6}  p95(1s) {p95:>7} ms  lag {lag:>6} ms")


class ProgressTracker:
    """Counts and last-interval figures of a run; thread-safe (the writer thread
    updates it from tables, the loop from the last rows at the end)."""

    def __init__(self, *, total_s: float) -> None:
        self.total_s = total_s
        self.counts: Counter[int] = Counter()
        self.start_mono = time.monotonic_ns()
        self.last_mono = self.start_mono
        self._lock = threading.Lock()

    def start(self, start_mono: int) -> None:
        self.start_mono = self.last_mono = start_mono

    def update(self, batch: Sequence[tuple[Any, ...]], *, final: bool = False) -> Progress:
        """From recorder rows (the few left at the end of a run; O(rows) in Python)."""
        kinds = Counter(map(_kind, batch))
        latencies = [(r[1] - r[5]) / 1e6 for r in batch if r[0] == Kind.RECV]
        lags = [(r[6] - r[5]) / 1e6 for r in batch if r[0] == Kind.SEND]
        return self._snapshot(kinds, latencies, max(lags) if lags else None, final=final)

    def update_table(self, table: pa.Table) -> Progress:
        """From a batch as an EVENT_SCHEMA table (vectorised; called by the writer thread)."""
        kinds: Counter[int] = Counter()
        for row in pc.value_counts(table.column("kind")).to_pylist():
            kinds[_KIND_CODES[row["values"]]] += row["counts"]
        is_send = pc.equal(table.column("kind"), "send")
        lag = pc.max(pc.subtract(pc.filter(table.column("sent_ns"), is_send),
                                 pc.filter(table.column("intended_ns"), is_send))).as_py()
        is_recv = pc.equal(table.column("kind"), "recv")
        latencies = pc.filter(table.column("latency_ms"), is_recv).to_numpy()
        return self._snapshot(kinds, latencies, None if lag is None else lag / 1e6)

    def _snapshot(self, kinds: Counter[int], latencies_ms: Any, lag_ms: float | None, *,
                  final: bool = False) -> Progress:
        with self._lock:
            now = time.monotonic_ns()
            self.counts.update(kinds)
            interval = max((now - self.last_mono) / 1e9, 1e-9)
            self.last_mono = now
            counts = dict(self.counts)
        return Progress(
            elapsed_s=max(now - self.start_mono, 0) / 1e9,
            total_s=self.total_s,
            sent=counts.get(Kind.SEND, 0),
            received=counts.get(Kind.RECV, 0),
            errors=counts.get(Kind.ERROR, 0),
            timeouts=counts.get(Kind.TIMEOUT, 0),
            rate=kinds[Kind.SEND] / interval,
            p95_ms=percentile(latencies_ms, 0.95) if len(latencies_ms) else None,
            lag_ms=lag_ms,
            final=final,
            pushes=counts.get(Kind.PUSH, 0),
        )
