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


def _sorted(values: pl.Series) -> np.ndarray:
    array = values.to_numpy()
    return array if values.is_sorted() else np.sort(array)


def stall(rule: Any, ctx: Context) -> list[Hit]:
    """No replies for longer than max(min_silence, factor x the usual gap) while sends wait."""
    prep = ctx.metrics.prepared
    replies, sends = prep.rows("recv"), prep.rows("send")
    typical = float(replies["latency_ms"].median() or 0) * 1e6  # type: ignore[arg-type]
    if rule.scope == "run":
        return _silences(_sorted(replies["ts"]), _sorted(sends["at"]), prep.t_end, rule, typical)
    return _connection_silences(replies, sends, rule, prep.t_end, typical)


def _connection_silences(
    replies: pl.DataFrame, sends: pl.DataFrame, rule: Any, end: int, typical: float
) -> list[Hit]:
    """Per-connection silences, vectorised: candidate gaps first, then pending sends."""
    replies = replies.select("conn", "ts")
    if not replies["ts"].is_sorted():
        replies = replies.sort("ts")
    # within a connection, rows keep capture (time) order, so shift() is the previous reply
    replies = replies.with_columns(prev=pl.col("ts").shift(1).over("conn"))
    tails = replies.group_by("conn").agg(prev=pl.col("ts").max()).with_columns(ts=pl.lit(end))
    gaps = pl.concat([replies.drop_nulls("prev"), tails.select("conn", "ts", "prev")])
    gaps = gaps.with_columns(gap=pl.col("ts") - pl.col("prev"))
    usual = gaps.group_by("conn").agg(usual=pl.col("gap").median())
    limit = pl.max_horizontal(pl.lit(rule.min_silence * 1e9), rule.factor * pl.col("usual"))
    found = gaps.join(usual, on="conn").with_columns(limit=limit).filter(pl.col("gap") > limit)
    if found.height == 0:
        return []
    sends = sends.select("conn", "at").filter(pl.col("conn").is_in(found["conn"].implode()))
    pending = (
        found.join(sends, on="conn")
        .filter(pl.col("at") > pl.col("prev"), pl.col("at") < pl.col("ts") - typical)
        .group_by("conn", "prev", "ts", "limit").agg(pending=pl.len())
        .filter(pl.col("pending") >= rule.min_pending)
        .sort("prev")
    )  # fmt: skip
    return [
        Hit(start=int(r["prev"]), end=int(r["ts"]),
            strength=strength((r["ts"] - r["prev"]) / r["limit"], 1.0),
            counts={"pending": r["pending"]},
            peaks={"silence_s": round((r["ts"] - r["prev"]) / 1e9, 6)},
            limits={"limit_s": round(r["limit"] / 1e9, 6)}, labels={"conn": r["conn"]})
        for r in pending.iter_rows(named=True)
    ]  # fmt: skip


def _normalise(text: str) -> str:
    return _DIGITS.sub("#", text)[:80]


def error_pattern(rule: Any, ctx: Context) -> list[Hit]:
    """Windows with at least ``min_count`` error texts matching ``pattern``, per message."""
    prep = ctx.metrics.prepared
    kinds = ["error", "timeout"] if rule.include_timeouts else ["error"]
    length = int(rule.window * 1e9)
    origin = prep.origin(length)
    try:
        matched = prep.frame.filter(
            pl.col("kind").is_in(kinds), pl.col("error").str.contains(rule.pattern)
        )
    except pl.exceptions.ComputeError as exc:
        raise ConfigError(f"rule {rule.id!r} field 'pattern': {exc}") from None
    counted = (
        matched.with_columns(w=(pl.col("at") - origin) // length)
        .with_columns(message=pl.col("error").map_elements(_normalise, return_dtype=pl.String))
        .group_by("w", "message")
        .agg(count=pl.len())
        .filter(pl.col("count") >= rule.min_count)
        .sort("w")
    )
    return [
        Hit(start=origin + row["w"] * length, end=origin + (row["w"] + 1) * length,
            strength=strength(row["count"], rule.min_count), counts={"count": row["count"]},
            limits={"pattern": rule.pattern}, labels={"error": row["message"]})
        for row in counted.iter_rows(named=True)
    ]  # fmt: skip


def _expected_shapes(rule: Any, ctx: Context, shapes: pl.DataFrame) -> set[str]:
    """Field sets that are not drift: the rule's ``expected``, every one seen in earlier
    runs, and the one this run started with (the dominant one of its first window
    with replies). Not the run's overall dominant one: a drift that starts early
    and lasts becomes the majority, and would make the original shape look odd."""
    expected = set(rule.expected)
    for earlier in ctx.history:
        expected |= set(earlier.schemas["fingerprint"].to_list())
    if shapes.height:
        first = shapes.filter(pl.col("w") == pl.col("w").min()).sort("count", "shape")
        expected.add(first["shape"][-1])
    return expected


def schema_drift(rule: Any, ctx: Context) -> list[Hit]:
    """Windows whose replies show a field set that is not the expected one."""
    shapes = ctx.metrics.shapes_for(rule.window)
    expected = _expected_shapes(rule, ctx, shapes)
    length = int(rule.window * 1e9)
    t0 = ctx.metrics.origin(length)
    odd = shapes.filter(~pl.col("shape").is_in(list(expected)), pl.col("count") >= rule.min_count)
    return [
        Hit(start=t0 + row["w"] * length, end=t0 + (row["w"] + 1) * length,
            strength=strength(row["count"], rule.min_count), counts={"count": row["count"]},
            limits={"expected": sorted(expected)}, labels={"fields": row["shape"]})
        for row in odd.iter_rows(named=True)
    ]  # fmt: skip
