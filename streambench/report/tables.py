"""Small tables the charts draw, computed from a run's events with polars.

Each function reads only the columns it needs from the store's LazyFrame and
returns a compact DataFrame (at most a few hundred rows), so charts and
reports stay small whatever the size of the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

MAX_NINES = 4.0  # the percentile curve stops at 99.99%
_STEPS_PER_NINE = 40


def _latencies(events: pl.LazyFrame) -> pl.Series:
    return (
        events.filter(pl.col("kind") == "recv")
        .select(pl.col("latency_ms").drop_nulls().sort())
        .collect()["latency_ms"]
    )


def percentiles(runs: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Latency at percentiles from 0 to 99.99 for each run (label -> events).

    Columns: ``run``, ``percentile`` (0-100), ``nines`` (-log10(1 - q), the
    x axis of :func:`streambench.report.charts.percentile_curve`),
    ``latency_ms`` (exact nearest-rank value). A run's curve stops where its
    sample size stops supporting the percentile (n replies: log10(n) nines).
    """
    frames = []
    for label, events in runs.items():
        values = _latencies(events)
        if values.len() == 0:
            continue
        top = min(MAX_NINES, math.log10(values.len()))
        steps = max(int(top * _STEPS_PER_NINE), 1)
        nines = [top * i / steps for i in range(steps + 1)]
        qs = [1 - 10 ** (-n) for n in nines]
        index = [min(max(math.ceil(q * values.len()) - 1, 0), values.len() - 1) for q in qs]
        frames.append(pl.DataFrame({
            "run": [label] * len(qs),
            "percentile": [q * 100 for q in qs],
            "nines": nines,
            "latency_ms": values.gather(index),
        }))  # fmt: skip
    return pl.concat(frames) if frames else pl.DataFrame(
        schema={"run": pl.String, "percentile": pl.Float64, "nines": pl.Float64,
                "latency_ms": pl.Float64})  # fmt: skip


def histogram(runs: Mapping[str, pl.LazyFrame], *, bins_per_decade: int = 10) -> pl.DataFrame:
    """Share of replies per logarithmic latency bin, for each run (label -> events).

    Columns: ``run``, ``bin_ms`` (lower edge of the bin), ``share`` (0-1).
    """
    frames = []
    for label, events in runs.items():
        values = _latencies(events)
        if values.len() == 0:
            continue
        frame = pl.DataFrame({"latency_ms": values.clip(lower_bound=1e-3)})
        edge = (pl.col("latency_ms").log10() * bins_per_decade).floor() / bins_per_decade
        frames.append(
            frame.group_by(bin_ms=10**edge).agg(share=pl.len() / values.len())
            .with_columns(run=pl.lit(label)).select("run", "bin_ms", "share").sort("bin_ms")
        )  # fmt: skip
    return pl.concat(frames) if frames else pl.DataFrame(
        schema={"run": pl.String, "bin_ms": pl.Float64, "share": pl.Float64})  # fmt: skip


def error_kinds(events: pl.LazyFrame) -> pl.DataFrame:
    """Failed messages and failed sends by kind: ``kind``, ``count`` (largest first).

    ``kind`` is the error's status (``error_reply``, ``disconnected``,
    ``not_connected`` ...) or ``timeout``.
    """
    kind = pl.col("kind")
    return (
        events.filter(kind.is_in(["error", "timeout"]))
        .select(kind=pl.when(kind == "timeout").then(pl.lit("timeout"))
                .otherwise(pl.coalesce(pl.col("status"), pl.lit("error"))))
        .group_by("kind").agg(count=pl.len())
        .sort(["count", "kind"], descending=[True, False])
        .collect()
    )  # fmt: skip


def summary_table(summary: Mapping[str, object]) -> pl.DataFrame:
    """A run summary (``streambench.summarize``) as two columns for display: what, value."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        if isinstance(value, Mapping):
            rows.extend((f"{key}.{k}", _show(v)) for k, v in value.items())
        elif key != "schema_version":
            rows.append((key, _show(value)))
    return pl.DataFrame(rows, schema=["what", "value"], orient="row")


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
