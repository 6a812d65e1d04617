"""Detectors that read events rather than the window table: stall, error
pattern and schema drift. Each is ``detector(rule, ctx) -> list[Hit]``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from streambench.analyze.hits import Context, Hit, strength
from streambench.analyze.silences import DEFAULT_FLOORS, Floors, usual_gaps
from streambench.errors import ConfigError

_MESSAGE_CHARS = 80


def _floors(rule: Any) -> Floors:
    """Floors low enough for ``rule`` (the default ones unless it asks for less)."""
    minimum, factor = rule.min_silence * 1e9, rule.factor
    if DEFAULT_FLOORS.covers(scope=rule.scope, min_silence_ns=minimum, factor=factor):
        return DEFAULT_FLOORS
    return Floors(run_ns=int(min(DEFAULT_FLOORS.run_ns, minimum)),
                  conn_ns=int(min(DEFAULT_FLOORS.conn_ns, minimum)),
                  factor=min(DEFAULT_FLOORS.factor, factor))  # fmt: skip


def stall(rule: Any, ctx: Context) -> list[Hit]:
    """No replies for longer than max(min_silence, factor x the usual gap) while sends waited.

    The usual gap is the mean gap between replies, of the run or of the
    connection (see :mod:`streambench.analyze.silences`).
    """
    silences = ctx.metrics.silences(_floors(rule))
    usual, usual_by_conn = usual_gaps(ctx.metrics.facts)
    if rule.scope == "run":
        found = silences.filter(pl.col("conn").is_null()).with_columns(usual=pl.lit(usual))
    else:
        found = silences.filter(pl.col("conn").is_not_null()).join(usual_by_conn, on="conn")
    limit = pl.max_horizontal(pl.lit(rule.min_silence * 1e9), rule.factor * pl.col("usual"))
    found = found.with_columns(limit=limit).filter(
        pl.col("end") - pl.col("start") > pl.col("limit"),
        pl.col("pending") >= rule.min_pending,
    ).sort("start", "conn")
    return [
        Hit(start=int(r["start"]), end=int(r["end"]),
            strength=strength((r["end"] - r["start"]) / r["limit"], 1.0),
            counts={"pending": int(r["pending"])},
            peaks={"silence_s": round((r["end"] - r["start"]) / 1e9, 6)},
            limits={"limit_s": round(r["limit"] / 1e9, 6)},
            labels={"conn": r["conn"]} if rule.scope == "connection" else {})
        for r in found.iter_rows(named=True)
    ]  # fmt: skip


def error_pattern(rule: Any, ctx: Context) -> list[Hit]:
    """Windows with at least ``min_count`` error texts matching ``pattern``, per message
    (the text with digits as ``#``, at most 80 characters)."""
    kinds = ["error", "timeout"] if rule.include_timeouts else ["error"]
    length = int(rule.window * 1e9)
    origin = ctx.metrics.origin(length)
    table = ctx.metrics.errors_for(rule.window)
    try:
        matched = table.filter(pl.col("kind").is_in(kinds),
                               pl.col("error").str.contains(rule.pattern))  # fmt: skip
    except pl.exceptions.ComputeError as exc:
        raise ConfigError(f"rule {rule.id!r} field 'pattern': {exc}") from None
    message = pl.col("error").str.replace_all(r"\d+", "#").str.slice(0, _MESSAGE_CHARS)
    counted = (
        matched.group_by("w", message.alias("message"))
        .agg(count=pl.col("count").sum())
        .filter(pl.col("count") >= rule.min_count)
        .sort("w", "message")
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
