"""Live progress of a run, computed from each batch of rows before it is written.

The p95 shown live is of the last interval only (over a systematic sample of
at most ~10,000 of its rows), and says so: the run's real, exact percentiles
come from the store afterwards. It is the same nearest-rank percentile as
every other one (:mod:`streambench.stats`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from streambench.capture.schema import Kind
from streambench.stats import percentile

_kind = itemgetter(0)
_SAMPLE_ROWS = 10_000


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
    lag_ms: float | None  # worst schedule lag over the last interval (sampled)
    final: bool = False

    def line(self) -> str:
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.1f}"
        lag = "-" if self.lag_ms is None else f"{self.lag_ms:.1f}"
        return (f"{self.elapsed_s:6.1f}/{self.total_s:.0f}s  rate {self.rate:8.0f}/s  "
                f"sent {self.sent:>9}  recv {self.received:>9}  err {self.errors:>6}  "
                f"timeout {self.timeouts:>6}  p95(1s) {p95:>7} ms  lag {lag:>6} ms")


class ProgressTracker:
    def __init__(self, *, total_s: float) -> None:
        self.total_s = total_s
        self.counts: Counter[int] = Counter()
        self.start_mono = time.monotonic_ns()
        self.last_mono = self.start_mono

    def start(self, start_mono: int) -> None:
        self.start_mono = self.last_mono = start_mono

    def update(self, batch: Sequence[tuple[Any, ...]], *, final: bool = False) -> Progress:
        now = time.monotonic_ns()
        kinds = Counter(map(_kind, batch))
        self.counts.update(kinds)
        interval = max((now - self.last_mono) / 1e9, 1e-9)
        self.last_mono = now
        # This runs on the event loop every flush: look at a systematic sample of at
        # most ~10,000 rows so it costs a millisecond or two, not tens at high rates.
        sample = batch[::max(1, len(batch) // _SAMPLE_ROWS)]
        latencies = [r[1] - r[5] for r in sample if r[0] == Kind.RECV]
        lags = [r[6] - r[5] for r in sample if r[0] == Kind.SEND]
        return Progress(
            elapsed_s=max(now - self.start_mono, 0) / 1e9,
            total_s=self.total_s,
            sent=self.counts[Kind.SEND],
            received=self.counts[Kind.RECV],
            errors=self.counts[Kind.ERROR],
            timeouts=self.counts[Kind.TIMEOUT],
            rate=kinds[Kind.SEND] / interval,
            p95_ms=_ms(percentile(latencies, 0.95)),
            lag_ms=max(lags) / 1e6 if lags else None,
            final=final,
        )


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6
