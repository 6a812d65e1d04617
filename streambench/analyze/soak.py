"""Soak health: how the run's processes fared over time, and steady memory growth.

The run engine records one row per process per sample interval (see
docs/analysis.md#process-health-rows): resident memory, open files, CPU,
parts written. :func:`health_windows` puts them on the run's windows, one row
per window and process; :func:`memory_trends` fits a straight line to each
process's resident memory after a warm-up and says how steadily and how much
it grew, which is what the ``memory_growth`` rule (``memory-leak``) judges:
a leak is growth that is both large (relative and absolute) and steady (the
line explains most of the variation, so a one-off step or noise is not one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from streambench.analyze.hits import Context, Hit, strength

MB = 1024 * 1024
SERIES = ("source", "worker")  # one series per process: the target, each client worker


def health_windows(health: pl.DataFrame, *, window_s: float, origin: int) -> pl.DataFrame:
    """Per window and process: ``start``, ``source``, ``worker``, ``rss_mb`` (the
    last sample), ``open_files`` (max), ``cpu`` (cores used), ``parts_written``
    (last), ``loop_stall_ms`` (max), ``connections`` (last)."""
    length = int(window_s * 1e9)
    w = ((pl.col("ts").dt.epoch("ns") - origin) // length).alias("w")
    return (
        health.sort("ts")
        .group_by(w, *SERIES)
        .agg(
            rss_mb=pl.col("rss_bytes").last() / MB,
            open_files=pl.col("open_files").max(),
            cpu=pl.col("cpu_s").sum() / window_s,
            parts_written=pl.col("parts_written").last(),
            loop_stall_ms=pl.col("loop_stall_ms").max(),
            connections=pl.col("connections").last(),
        )
        .with_columns(start=pl.from_epoch(pl.col("w") * length + origin, time_unit="ns")
                      .dt.replace_time_zone("UTC"))
        .sort("w", *SERIES)
    )  # fmt: skip


def memory_trends(health: pl.DataFrame | None, *, warmup_s: float) -> pl.DataFrame:
    """One row per process: ``source``, ``worker``, ``samples``, ``start``/``end``
    (epoch ns of the judged samples, after ``warmup_s``), ``start_mb``/``end_mb``
    (the fitted line at both ends), ``growth`` (relative), ``growth_mb``,
    ``mb_per_hour`` and ``r2`` (how well a straight line fits)."""
    schema = {"source": pl.String, "worker": pl.Int32, "samples": pl.Int64, "start": pl.Int64,
              "end": pl.Int64, "start_mb": pl.Float64, "end_mb": pl.Float64,
              "growth": pl.Float64, "growth_mb": pl.Float64, "mb_per_hour": pl.Float64,
              "r2": pl.Float64}  # fmt: skip
    if health is None or health.height == 0:
        return pl.DataFrame(schema=schema)
    samples = health.filter(pl.col("rss_bytes").is_not_null()).select(
        *SERIES, t=pl.col("ts").dt.epoch("ns"), mb=pl.col("rss_bytes") / MB)
    first = samples["t"].min()
    judged = samples.filter(pl.col("t") >= first + int(warmup_s * 1e9))  # type: ignore[operator]
    rows = [_fit(key, part) for key, part in judged.sort("t").group_by(SERIES,
                                                                       maintain_order=True)]
    return pl.DataFrame([r for r in rows if r], schema=schema)


def _fit(key: tuple[Any, ...], part: pl.DataFrame) -> dict[str, Any] | None:
    t, mb = part["t"].to_numpy(), part["mb"].to_numpy()
    if len(t) < 3 or t[-1] == t[0]:
        return None
    hours = (t - t[0]) / 3.6e12
    slope, intercept = np.polyfit(hours, mb, 1)
    fitted = slope * hours + intercept
    spread = float(((mb - mb.mean()) ** 2).sum())
    r2 = 1.0 - float(((mb - fitted) ** 2).sum()) / spread if spread else 0.0
    start_mb, end_mb = float(fitted[0]), float(fitted[-1])
    return {"source": key[0], "worker": key[1], "samples": len(t), "start": int(t[0]),
            "end": int(t[-1]), "start_mb": start_mb, "end_mb": end_mb,
            "growth": (end_mb - start_mb) / start_mb if start_mb > 0 else 0.0,
            "growth_mb": end_mb - start_mb, "mb_per_hour": float(slope), "r2": r2}  # fmt: skip


def memory_growth(rule: Any, ctx: Context) -> list[Hit]:
    """Processes whose memory grew by at least ``min_growth`` (and ``min_growth_mb``)
    over at least ``min_span`` after the warm-up, steadily (``r2 >= min_fit``)."""
    trends = memory_trends(ctx.metrics.health, warmup_s=rule.warmup)
    leaking = trends.filter(
        pl.col("end") - pl.col("start") >= rule.min_span * 1e9,
        pl.col("growth") >= rule.min_growth,
        pl.col("growth_mb") >= rule.min_growth_mb,
        pl.col("r2") >= rule.min_fit,
    )
    return [
        Hit(start=r["start"], end=r["end"], strength=strength(r["growth"], rule.min_growth),
            counts={"samples": r["samples"]},
            peaks={"growth_pct": round(100 * r["growth"], 2),
                   "start_mb": round(r["start_mb"], 1), "end_mb": round(r["end_mb"], 1),
                   "mb_per_hour": round(r["mb_per_hour"], 2), "r2": round(r["r2"], 3)},
            limits={"min_growth_pct": round(100 * rule.min_growth, 2), "min_fit": rule.min_fit},
            labels={"source": r["source"], "worker": r["worker"]})
        for r in leaking.iter_rows(named=True)
    ]  # fmt: skip
