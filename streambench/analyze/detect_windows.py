"""Detectors that judge the per-window table: threshold, rate of change,
statistical, sequence, connection storm and throughput drop.

Each is ``detector(rule, ctx) -> list[Hit]``. Rules about rates
(rate of change, statistical, throughput drop) look only at ``active`` windows,
the ones fully inside the sending period, so a run's ramp-up and tail never
look like a drop.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from streambench.analyze.hits import Context, Hit, window_hits
from streambench.analyze.windows import QUANTILES

_OPS = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
_LATENCY = {*QUANTILES, "max_ms", "mean_ms"}
_RATES = {"error_rate", "timeout_rate", "loss_rate"}


def _samples(metric: str, minimum: int) -> pl.Expr:
    """Enough data in the window to judge ``metric`` at all."""
    if minimum <= 0:
        return pl.lit(True)
    if metric in _LATENCY:
        return pl.col("replies") >= minimum
    if metric in _RATES:
        return pl.col("sent") >= minimum
    return pl.lit(True)


_SEND_RATE = {"sent", "throughput_sent"}


def _table(rule: Any, ctx: Context) -> tuple[pl.DataFrame, int, int]:
    """The window table the rule judges, with its window length and origin (ns).

    A rule about the send rate at a window length of its own gets the cheap
    send-count table instead of a whole second window table (cached likewise).
    """
    length = int(rule.window * 1e9)
    origin = ctx.metrics.origin(length)
    metric = getattr(rule, "metric", None)
    if metric in _SEND_RATE and rule.window != ctx.metrics.window_s:
        return ctx.metrics.send_windows_for(rule.window), length, origin
    return ctx.metrics.windows_for(rule.window), length, origin


def threshold(rule: Any, ctx: Context) -> list[Hit]:
    table, length, t0 = _table(rule, ctx)
    value = pl.col(rule.metric)
    fired = getattr(value, _OPS[rule.op])(rule.value) & _samples(rule.metric, rule.min_samples)
    below = rule.op.startswith("<")
    ratio = (rule.value / value) if below else (value / rule.value) if rule.value else None
    return window_hits(table, fired, window_ns=length, t0=t0, value=rule.metric,
                       limit=rule.value, ratio=ratio, limits={"op": rule.op})  # fmt: skip


def rate_of_change(rule: Any, ctx: Context) -> list[Hit]:
    table, length, t0 = _table(rule, ctx)
    table = table.filter("active").with_columns(
        base=pl.col(rule.metric).rolling_median(rule.lookback, min_samples=1).shift(1)
    )
    value, base = pl.col(rule.metric), pl.col("base")
    if rule.direction == "up":
        fired = (value >= base * rule.factor) & (value - base >= rule.min_delta)
        ratio = value / (base * rule.factor)
    else:
        fired = (value <= base / rule.factor) & (base - value >= rule.min_delta)
        ratio = base / (value * rule.factor).clip(lower_bound=1e-9)
    fired = fired & (base >= rule.min_base)
    hits = window_hits(
        table,
        fired,
        window_ns=length,
        t0=t0,
        value=rule.metric,
        limit=rule.factor,
        ratio=ratio,
        limits={"direction": rule.direction},
    )
    return _with_base(hits, table, t0, length)  # fmt: skip


def _with_base(hits: list[Hit], table: pl.DataFrame, t0: int, length: int) -> list[Hit]:
    base = dict(zip(table["w"].to_list(), table["base"].to_list(), strict=True))
    return [
        Hit(h.start, h.end, h.strength, h.counts, h.peaks,
            {**h.limits, "baseline": round(base[(h.start - t0) // length] or 0.0, 6)}, h.labels)
        for h in hits
    ]  # fmt: skip


def _center_scale(rule: Any, ctx: Context, values: pl.Expr, table: pl.DataFrame
                  ) -> tuple[pl.Expr, pl.Expr, str]:  # fmt: skip
    """Baseline centre and robust spread for each window, as expressions."""
    history = [m.windows_for(rule.window) for m in ctx.history]
    source = rule.baseline
    if source == "auto":
        source = "history" if history else "run"
    if source in ("run", "history"):
        pool = table if source == "run" else pl.concat([h.select(table.columns) for h in history])
        sample = pool.filter("active", _samples(rule.metric, rule.min_samples))[rule.metric]
        sample = sample.drop_nulls()
        center = float(sample.median() or 0.0)
        mad = float((sample - center).abs().median() or 0.0)
        return pl.lit(center), pl.lit(1.4826 * mad), source
    if rule.method == "ewma":
        return (values.ewm_mean(alpha=rule.alpha).shift(1),
                values.ewm_std(alpha=rule.alpha).shift(1), "ewma")  # fmt: skip
    def q(p: float) -> pl.Expr:
        return values.rolling_quantile(p, window_size=rule.lookback, min_samples=3)

    return q(0.5).shift(1), ((q(0.75) - q(0.25)) / 1.349).shift(1), "rolling"


def statistical(rule: Any, ctx: Context) -> list[Hit]:
    table, length, t0 = _table(rule, ctx)
    table = table.filter("active", _samples(rule.metric, rule.min_samples))
    values = pl.col(rule.metric)
    center, scale, source = _center_scale(rule, ctx, values, table)
    table = table.with_columns(center=center, scale=scale.clip(lower_bound=1e-9))
    delta = values - pl.col("center")
    if rule.direction == "down":
        delta = -delta
    elif rule.direction == "both":
        delta = delta.abs()
    score = delta / pl.col("scale")
    fired = (score >= rule.z) & (delta >= rule.min_change * pl.col("center").abs())
    fired = fired & (delta >= rule.min_delta)
    table = table.with_columns(z_score=score)
    hits = window_hits(table, fired, window_ns=length, t0=t0, value=rule.metric, limit=rule.z,
                       ratio=score / rule.z, limits={"baseline": source})  # fmt: skip
    centers = dict(zip(table["w"].to_list(), table["center"].to_list(), strict=True))
    scores = dict(zip(table["w"].to_list(), table["z_score"].to_list(), strict=True))
    out = []
    for h in hits:
        w = (h.start - t0) // length
        peaks = {**h.peaks, "z_score": round(scores[w], 3)}
        limits = {**h.limits, "center": round(centers[w] or 0.0, 6)}
        out.append(Hit(h.start, h.end, h.strength, h.counts, peaks, limits, h.labels))
    return out


_SEQUENCE_COLUMN = {
    "gaps": "lost",
    "duplicates": "duplicates",
    "reorder": "out_of_order",
    "unsent": "unsent",
}


def sequence(rule: Any, ctx: Context) -> list[Hit]:
    table, length, t0 = _table(rule, ctx)
    column = _SEQUENCE_COLUMN[rule.check]
    fired = pl.col(column) >= rule.min_count
    return window_hits(table, fired, window_ns=length, t0=t0, value=column,
                       limit=rule.min_count, counts=[column, "sent"])  # fmt: skip


def connection_storm(rule: Any, ctx: Context) -> list[Hit]:
    table, length, t0 = _table(rule, ctx)
    fired = pl.col(rule.metric) >= rule.min_count
    counts = ["reconnects", "disconnects"]
    return window_hits(table, fired, window_ns=length, t0=t0, value=rule.metric,
                       limit=rule.min_count, counts=counts)  # fmt: skip


def throughput_drop(rule: Any, ctx: Context) -> list[Hit]:
    table, length, t0 = _table(rule, ctx)
    table = table.filter("active")
    base = float(table[rule.metric].median() or 0.0)
    if base < rule.min_base:
        return []
    floor = (1 - rule.drop) * base
    value = pl.col(rule.metric)
    ratio = pl.lit(floor) / value.clip(lower_bound=1e-9)
    return window_hits(table, value < floor, window_ns=length, t0=t0, value=rule.metric,
                       limit=round(floor, 6), ratio=ratio,
                       limits={"baseline": round(base, 6)})  # fmt: skip
