"""Server pushes of a run: how many, how often, how stale, and what went missing.

Reads the ``push`` rows (their slots are described in
:mod:`streambench.generate.engine.pushes`):

* the *gap* of a push is its arrival minus the previous push's on the same
  stream (``ts - intended_ns``); the first push of a stream has none;
* its *staleness* is its arrival minus the server's timestamp
  (``ts - sent_ns``), when the scenario's ``stream.timestamp`` says where the
  server puts one; it includes any difference between the two clocks;
* *sequence gaps*, when ``stream.sequence`` says where the server numbers its
  pushes, per stream (a connection's stream until the connection is lost, or a
  subscription): ``missing`` numbers never received between the lowest and
  the highest seen, ``duplicates`` numbers received again, ``out_of_order``
  numbers received after a higher one (late, not lost).

Percentiles are exact (nearest rank, :mod:`streambench.analyze.quantiles`).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from streambench.analyze.quantiles import distribution

STREAM = ("conn", "epoch", "cid")  # what tells one stream from another


def gap_ms() -> pl.Expr:
    """A push's inter-arrival gap in milliseconds (null for a stream's first push)."""
    return (pl.col("ts").cast(pl.Int64) - pl.col("intended_ns")) / 1e6


def staleness_ms() -> pl.Expr:
    """A push's age on arrival in milliseconds (null without a server timestamp)."""
    return (pl.col("ts").cast(pl.Int64) - pl.col("sent_ns")) / 1e6


def push_summary(events: pl.LazyFrame, *, duration_s: float | None) -> dict[str, Any]:
    """``received``, ``rate`` (per second of the planned duration, else of the pushes'
    span), ``streams``, ``gap_ms`` and ``staleness_ms`` (``p50``, ``p99``, ``max``;
    staleness null without timestamps) and ``sequence`` (null without numbers)."""
    pushes = events.filter(pl.col("kind") == "push")
    row = pushes.select(received=pl.len(), first=pl.col("ts").min(), last=pl.col("ts").max(),
                        stamped=pl.col("sent_ns").is_not_null().sum(),
                        numbered=pl.col("seq").is_not_null().sum(),
                        streams=pl.struct("conn", "cid").n_unique()).collect().row(0, named=True)
    received = int(row["received"])
    span = (row["last"] - row["first"]).total_seconds() if received > 1 else 0.0
    seconds = duration_s or span
    return {
        "received": received,
        "rate": received / seconds if seconds else None,
        "streams": int(row["streams"]) if received else 0,
        "gap_ms": _figures(pushes.select(gap_ms())),
        "staleness_ms": _figures(pushes.select(staleness_ms())) if row["stamped"] else None,
        "sequence": sequence_gaps(events) if row["numbered"] else None,
    }


def _figures(values: pl.LazyFrame) -> dict[str, float | None]:
    found = distribution([values])
    p50, p99 = found.quantiles([0.5, 0.99])
    return {"p50": _round(p50), "p99": _round(p99), "max": _round(found.maximum)}


def numbered_pushes(events: pl.LazyFrame) -> pl.LazyFrame:
    """Numbered pushes in arrival order with their stream (``conn``, ``epoch``: how many
    times the connection was lost before, ``cid``) and ``duplicate`` / ``out_of_order``
    flags. (A connection's ``connect`` row may come after its first pushes, once its
    set-up steps are done; its ``disconnect`` row always comes after its last.)"""
    kind = pl.col("kind")
    rows = (events.filter(kind.is_in(["push", "disconnect"]))
            .select("conn", "ts", kind.cast(pl.String).alias("kind"), "cid", "seq")
            .sort("conn", "ts", maintain_order=True)
            .with_columns(epoch=(pl.col("kind") == "disconnect").cum_sum().over("conn"))
            .filter(pl.col("kind") == "push", pl.col("seq").is_not_null()))
    seq = pl.col("seq")
    return rows.with_columns(
        duplicate=~seq.is_first_distinct().over(STREAM),
        highest_before=seq.cum_max().shift(1).over(STREAM),
    ).with_columns(out_of_order=~pl.col("duplicate") & (seq < pl.col("highest_before")))


def sequence_gaps(events: pl.LazyFrame) -> dict[str, int]:
    """``missing``, ``duplicates``, ``out_of_order`` and ``streams`` (numbered ones)."""
    per_stream = numbered_pushes(events).group_by(STREAM).agg(
        missing=pl.col("seq").max() - pl.col("seq").min() + 1 - pl.col("seq").n_unique(),
        duplicates=pl.col("duplicate").sum(),
        out_of_order=pl.col("out_of_order").sum(),
    )
    totals = per_stream.select(pl.col("missing", "duplicates", "out_of_order").sum(),
                               streams=pl.len()).collect().row(0, named=True)
    return {key: int(value or 0) for key, value in totals.items()}


def format_pushes(pushes: dict[str, Any]) -> list[str]:
    """Summary lines about pushes (none when the run received none)."""
    if not pushes["received"]:
        return []

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    rate = pushes["rate"]
    gap = pushes["gap_ms"]
    lines = [f"  pushes  received {pushes['received']}"
             + (f"  rate {rate:.1f}/s" if rate is not None else "")
             + f"  streams {pushes['streams']}",
             f"  push gap ms  p50 {ms(gap['p50'])}  p99 {ms(gap['p99'])}  max {ms(gap['max'])}"]
    stale = pushes["staleness_ms"]
    if stale is not None:
        lines.append(f"  staleness ms (arrival - server timestamp)  p50 {ms(stale['p50'])}"
                     f"  p99 {ms(stale['p99'])}  max {ms(stale['max'])}")
    sequence = pushes["sequence"]
    if sequence is not None:
        lines.append(f"  sequence gaps  missing {sequence['missing']}  duplicates "
                     f"{sequence['duplicates']}  out of order {sequence['out_of_order']}")
    return lines


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
