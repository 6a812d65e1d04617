"""The run-level numbers of :class:`~streambench.analyze.measure.Metrics`.``run``.

Counts are the per-window counts summed; percentiles are exact over the whole
run (:mod:`streambench.analyze.quantiles`); the mean latency is summed window
by window, in window order, so it has the same bits however the run was
sliced.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from streambench.analyze.facts import RunFacts
from streambench.analyze.quantiles import Distribution
from streambench.analyze.types import iso
from streambench.analyze.windows import LATENCY_SUM, QUANTILES

RUN_COUNTS = ("sent", "received", "errors", "timeouts", "lost", "duplicates", "out_of_order",
              "unsent", "connects", "reconnects", "disconnects")  # fmt: skip


def run_summary(windows: pl.DataFrame, facts: RunFacts, *, latency: Distribution,
                lag: Distribution) -> dict[str, Any]:  # fmt: skip
    """Counts, rates, throughput, latency and schedule-lag figures of the whole run."""
    counts = {name: int(windows[name].sum()) for name in RUN_COUNTS} if windows.height else {}
    quantiles = dict(zip(QUANTILES, latency.quantiles(list(QUANTILES.values())), strict=True))
    # fsum: exact, so the total does not depend on how the windows were chunked
    total = math.fsum(windows[LATENCY_SUM].drop_nulls().to_list()) if windows.height else 0.0
    first, last_sent = facts.first_sent, facts.last_sent
    last = facts.last_reply if facts.last_reply is not None else facts.t_end
    span_s = (last - first) / 1e9 if first is not None else 0.0
    send_span_s = (last_sent - first) / 1e9 if first is not None and last_sent else 0.0
    sent = max(counts.get("sent", 0), 1)
    (lag_p99,) = lag.quantiles([0.99])
    return {
        "start": iso(first) if first is not None else None,
        "end": iso(facts.t_end) if facts.rows else None,
        "duration_s": round(span_s, 6),
        **counts,
        "error_rate": counts.get("errors", 0) / sent,
        "timeout_rate": counts.get("timeouts", 0) / sent,
        "loss_rate": counts.get("lost", 0) / sent,
        "throughput_sent": counts.get("sent", 0) / send_span_s if send_span_s else 0.0,
        "throughput_recv": counts.get("received", 0) / span_s if span_s else 0.0,
        **quantiles,
        "max_ms": latency.maximum,
        "mean_ms": total / latency.count if latency.count else None,
        "lag_p99_ms": lag_p99,
        "lag_max_ms": lag.maximum,
    }
