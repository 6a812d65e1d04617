"""Fan-out in the summary: deliveries expected vs received, latency and the last member.

From the rows the engine writes for ``expect: fanout`` kinds
(docs/backends.md#fan-out): a ``notify`` row per message (status: its group),
a ``delivery`` row per member that got it, a ``timeout`` row (status
``delivery``) per member that did not, and ``error`` rows for copies nobody
awaited (``duplicate``, ``late_delivery``, ``stray_delivery``).

:func:`fanout_summary` is the summary's ``fanout`` block (None for a run
without fan-out): totals, delivery latency from the sender's intended send
time, the time until the last member got each message, and the same per group.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from streambench.capture.status import FANOUT_ERRORS
from streambench.stats import nearest_rank_expr

GROUPS_SHOWN = 50  # groups listed in the summary, the most expected deliveries first


def fanout_summary(events: pl.LazyFrame) -> dict[str, Any] | None:
    """The ``fanout`` block of the run summary, or None when nothing fanned out."""
    kind, status = pl.col("kind").cast(pl.String), pl.col("status")
    messages = (events.filter((kind == "notify") & status.is_not_null())
                .select("cid", group=status))
    copies = (events.filter((kind == "delivery") | ((kind == "timeout")
                                                    & (status == "delivery")))
              .select("cid", "latency_ms", delivered=kind == "delivery")
              .join(messages, on="cid", how="left"))
    per_group = copies.group_by("group").agg(
        expected=pl.len(), delivered=pl.col("delivered").sum(),
        p50_ms=nearest_rank_expr(pl.col("latency_ms").drop_nulls(), 0.5),
        p99_ms=nearest_rank_expr(pl.col("latency_ms").drop_nulls(), 0.99),
    ).collect()
    if per_group.height == 0:
        return None
    last = copies.group_by("cid", "group").agg(last_ms=pl.col("latency_ms").max())
    last_groups = last.group_by("group").agg(
        messages=pl.len(), last_member_p99_ms=nearest_rank_expr(pl.col("last_ms").drop_nulls(),
                                                                0.99)).collect()
    groups = per_group.join(last_groups, on="group", how="left").sort(
        "expected", descending=True)
    totals = copies.select(
        expected=pl.len(), delivered=pl.col("delivered").sum(),
        p50=nearest_rank_expr(pl.col("latency_ms").drop_nulls(), 0.5),
        p99=nearest_rank_expr(pl.col("latency_ms").drop_nulls(), 0.99),
        max=pl.col("latency_ms").max()).collect().row(0, named=True)
    lasts = last.select(p50=nearest_rank_expr(pl.col("last_ms").drop_nulls(), 0.5),
                        p99=nearest_rank_expr(pl.col("last_ms").drop_nulls(), 0.99),
                        max=pl.col("last_ms").max()).collect().row(0, named=True)
    extra = dict(events.filter((kind == "error") & status.is_in(FANOUT_ERRORS))
                 .group_by("status").len().collect().iter_rows())
    return {
        "messages": messages.select(pl.len()).collect().item(),
        "expected": totals["expected"], "delivered": totals["delivered"],
        "missed": totals["expected"] - totals["delivered"],
        "delivery_ratio": _ratio(totals["delivered"], totals["expected"]),
        "duplicates": extra.get("duplicate", 0), "late": extra.get("late_delivery", 0),
        "stray": extra.get("stray_delivery", 0),
        "latency_ms": {k: _round(totals[k]) for k in ("p50", "p99", "max")},
        "last_member_ms": {k: _round(lasts[k]) for k in ("p50", "p99", "max")},
        "groups": [_group(row) for row in groups.head(GROUPS_SHOWN).iter_rows(named=True)],
    }


def _group(row: dict[str, Any]) -> dict[str, Any]:
    return {"group": row["group"], "messages": row["messages"], "expected": row["expected"],
            "delivered": row["delivered"],
            "delivery_ratio": _ratio(row["delivered"], row["expected"]),
            "p50_ms": _round(row["p50_ms"]), "p99_ms": _round(row["p99_ms"]),
            "last_member_p99_ms": _round(row["last_member_p99_ms"])}


def _ratio(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 6)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def format_fanout(block: dict[str, Any]) -> list[str]:
    """Summary lines: deliveries, their latency, the last member; the worst groups."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    ratio = block["delivery_ratio"]
    lines = [f"  fan-out  messages {block['messages']}  delivered {block['delivered']} of "
             f"{block['expected']}" + (f" ({ratio:.2%})" if ratio is not None else "")
             + f"  missed {block['missed']}  duplicates {block['duplicates']}"
             f"  late {block['late']}  stray {block['stray']}",
             f"  delivery latency ms (from intended send)  p50 {ms(block['latency_ms']['p50'])}"
             f"  p99 {ms(block['latency_ms']['p99'])}  max {ms(block['latency_ms']['max'])}"
             f"  last member p99 {ms(block['last_member_ms']['p99'])}"]
    worst = sorted((g for g in block["groups"] if g["delivery_ratio"] is not None),
                   key=lambda g: g["delivery_ratio"])[:3]
    if len(block["groups"]) > 1 and worst and worst[0]["delivery_ratio"] < 1:
        lines.append("  fan-out groups delivering least  " + ", ".join(
            f"{g['group']} {g['delivery_ratio']:.2%}" for g in worst))
    return lines
