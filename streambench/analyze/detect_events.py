"""Detectors that read events rather than the window table: stall, error
pattern and schema drift. Each is ``detector(rule, ctx) -> list[Hit]``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl

from streambench.analyze.hits import Context, Hit, strength
from streambench.errors import ConfigError

_DIGITS = re.compile(r"\d+")


def _silences(
    replies: np.ndarray, sends: np.ndarray, end: int, rule: Any, typical_ns: float
) -> list[Hit]:
    """Silences between sorted reply times with at least ``min_pending`` sends inside."""
    if len(replies) < 2 or len(sends) == 0:
        return []
    gaps = np.diff(replies)
    limit = max(rule.min_silence * 1e9, rule.factor * float(np.median(gaps)))
    starts, ends = replies[:-1][gaps > limit], replies[1:][gaps > limit]
    if end - replies[-1] > limit:  # silent until the end of the capture
        starts, ends = np.append(starts, replies[-1]), np.append(ends, end)
    # A send is pending if its reply was due (typical latency) before the silence ended.
    pending = np.searchsorted(sends, ends - typical_ns) - np.searchsorted(sends, starts, "right")
    return [
        Hit(start=int(s), end=int(e), strength=strength((e - s) / limit, 1.0),
            counts={"pending": int(p)}, peaks={"silence_s": round((e - s) / 1e9, 6)},
            limits={"limit_s": round(limit / 1e9, 6)})
        for s, e, p in zip(starts, ends, pending, strict=True)
        if p >= rule.min_pending
    ]  # fmt: skip


def stall(rule: Any, ctx: Context) -> list[Hit]:
    """No replies for longer than max(min_silence, factor x the usual gap) while sends wait."""
    prep = ctx.metrics.prepared
    frame = prep.frame
    typical = float(frame.filter(pl.col("kind") == "recv")["latency_ms"].median() or 0.0) * 1e6
    if rule.scope == "run":
        replies = frame.filter(pl.col("kind") == "recv")["ts"].sort().to_numpy()
        sends = frame.filter(pl.col("kind") == "send")["at"].sort().to_numpy()
        return _silences(replies, sends, prep.t_end, rule, typical)
    hits = []
    messages = frame.filter(pl.col("kind").is_in(["recv", "send"]))
    by_conn = messages.partition_by("conn", as_dict=True)
    for (conn,), rows in by_conn.items():
        replies = rows.filter(pl.col("kind") == "recv")["ts"].sort().to_numpy()
        sends = rows.filter(pl.col("kind") == "send")["at"].sort().to_numpy()
        for hit in _silences(replies, sends, prep.t_end, rule, typical):
            hits.append(Hit(hit.start, hit.end, hit.strength, hit.counts, hit.peaks,
                            hit.limits, {"conn": conn}))  # fmt: skip
    return hits


def _normalise(text: str) -> str:
    return _DIGITS.sub("#", text)[:80]


def error_pattern(rule: Any, ctx: Context) -> list[Hit]:
    """Windows with at least ``min_count`` error texts matching ``pattern``, per message."""
    prep = ctx.metrics.prepared
    kinds = ["error", "timeout"] if rule.include_timeouts else ["error"]
    length = int(rule.window * 1e9)
    try:
        matched = prep.frame.filter(
            pl.col("kind").is_in(kinds), pl.col("error").str.contains(rule.pattern)
        )
    except pl.exceptions.ComputeError as exc:
        raise ConfigError(f"rule {rule.id!r} field 'pattern': {exc}") from None
    counted = (
        matched.with_columns(w=(pl.col("at") - prep.t0) // length)
        .with_columns(message=pl.col("error").map_elements(_normalise, return_dtype=pl.String))
        .group_by("w", "message")
        .agg(count=pl.len())
        .filter(pl.col("count") >= rule.min_count)
        .sort("w")
    )
    return [
        Hit(start=prep.t0 + row["w"] * length, end=prep.t0 + (row["w"] + 1) * length,
            strength=strength(row["count"], rule.min_count), counts={"count": row["count"]},
            limits={"pattern": rule.pattern}, labels={"error": row["message"]})
        for row in counted.iter_rows(named=True)
    ]  # fmt: skip


def _expected_shapes(rule: Any, ctx: Context, shapes: pl.DataFrame) -> set[str]:
    expected = set(rule.expected)
    for earlier in ctx.history:
        expected |= set(earlier.schemas["fingerprint"].to_list())
    if shapes.height:
        totals = shapes.group_by("shape").agg(pl.col("count").sum()).sort("count")
        expected.add(totals["shape"][-1])  # the run's own dominant field set
    return expected


def schema_drift(rule: Any, ctx: Context) -> list[Hit]:
    """Windows whose replies show a field set that is not the expected one."""
    shapes = ctx.metrics.shapes_for(rule.window)
    expected = _expected_shapes(rule, ctx, shapes)
    length, t0 = int(rule.window * 1e9), ctx.metrics.prepared.t0
    odd = shapes.filter(~pl.col("shape").is_in(list(expected)), pl.col("count") >= rule.min_count)
    return [
        Hit(start=t0 + row["w"] * length, end=t0 + (row["w"] + 1) * length,
            strength=strength(row["count"], rule.min_count), counts={"count": row["count"]},
            limits={"expected": sorted(expected)}, labels={"fields": row["shape"]})
        for row in odd.iter_rows(named=True)
    ]  # fmt: skip
