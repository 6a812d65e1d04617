"""The ``push_stream`` detector: server pushes that stopped, came stale, or went missing.

Reads the run's ``push`` rows (see :mod:`streambench.analyze.pushes` for the
gap, staleness and stream definitions); a run without pushes has no hits.
One rule judges one ``check``:

* ``gap``: a push arrived ``min_gap`` or more after the previous one of its
  stream *and* ``factor`` times that stream's median gap (a feed that paused);
  the hit spans the silence, labelled with the connection;
* ``staleness``: at least ``min_count`` pushes in a window arrived more than
  ``limit_ms`` after the server stamped them;
* ``sequence``: at least ``min_count`` sequence problems in a window: numbers
  skipped (counted when a push jumps past them), repeated, or out of order.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from streambench.analyze.hits import Context, Hit, strength
from streambench.analyze.pushes import STREAM, gap_ms, numbered_pushes, staleness_ms

_MS = 1_000_000


def push_stream(rule: Any, ctx: Context) -> list[Hit]:
    """Hits of one ``push_stream`` rule (see the module docstring)."""
    events = ctx.metrics.events
    if rule.check == "gap":
        return _gaps(rule, events)
    if rule.check == "staleness":
        return _stale(rule, events, origin=ctx.metrics.origin(int(rule.window * 1e9)))
    return _sequence(rule, events, origin=ctx.metrics.origin(int(rule.window * 1e9)))


def _pushes(events: pl.LazyFrame) -> pl.LazyFrame:
    return events.filter(pl.col("kind") == "push").select(
        "conn", "cid", at=pl.col("ts").cast(pl.Int64), gap=gap_ms(), stale=staleness_ms())


def _gaps(rule: Any, events: pl.LazyFrame) -> list[Hit]:
    usual = pl.col("gap").median().over("conn", "cid")
    limit = pl.max_horizontal(pl.lit(rule.min_gap * 1e3), rule.factor * usual)
    found = (_pushes(events).filter(pl.col("gap").is_not_null())
             .with_columns(limit=limit).filter(pl.col("gap") > pl.col("limit"))
             .sort("at", "conn").collect())
    return [
        Hit(start=int(r["at"] - r["gap"] * _MS), end=int(r["at"]),
            strength=strength(r["gap"], r["limit"]),
            peaks={"gap_ms": round(r["gap"], 3)}, limits={"limit_ms": round(r["limit"], 3)},
            labels={"conn": r["conn"]})
        for r in found.iter_rows(named=True)
    ]  # fmt: skip


def _windowed(rows: pl.LazyFrame, rule: Any, origin: int, **aggregates: pl.Expr
              ) -> pl.DataFrame:
    length = int(rule.window * 1e9)
    return (rows.with_columns(w=(pl.col("at") - origin) // length)
            .group_by("w").agg(**aggregates).sort("w").collect())


def _stale(rule: Any, events: pl.LazyFrame, *, origin: int) -> list[Hit]:
    late = _pushes(events).filter(pl.col("stale") > rule.limit_ms)
    table = _windowed(late, rule, origin, count=pl.len(), worst=pl.col("stale").max())
    length = int(rule.window * 1e9)
    return [
        Hit(start=origin + r["w"] * length, end=origin + (r["w"] + 1) * length,
            strength=strength(r["worst"], rule.limit_ms), counts={"count": r["count"]},
            peaks={"staleness_ms": round(r["worst"], 3)}, limits={"limit_ms": rule.limit_ms})
        for r in table.iter_rows(named=True) if r["count"] >= rule.min_count
    ]  # fmt: skip


def _sequence(rule: Any, events: pl.LazyFrame, *, origin: int) -> list[Hit]:
    seq, highest = pl.col("seq"), pl.col("highest_before")
    rows = numbered_pushes(events).with_columns(
        at=pl.col("ts").cast(pl.Int64),
        skipped=pl.when(seq > highest + 1).then(seq - highest - 1).otherwise(0),
    )
    table = _windowed(rows, rule, origin, missing=pl.col("skipped").sum(),
                      duplicates=pl.col("duplicate").sum(),
                      out_of_order=pl.col("out_of_order").sum(),
                      streams=pl.struct(*STREAM).n_unique())
    length = int(rule.window * 1e9)
    hits = []
    for r in table.iter_rows(named=True):
        total = r["missing"] + r["duplicates"] + r["out_of_order"]
        if total >= rule.min_count:
            hits.append(Hit(start=origin + r["w"] * length, end=origin + (r["w"] + 1) * length,
                            strength=strength(total, rule.min_count),
                            counts={k: int(r[k]) for k in ("missing", "duplicates",
                                                           "out_of_order")}))
    return hits
