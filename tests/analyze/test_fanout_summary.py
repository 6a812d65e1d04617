"""The summary's fan-out block, from hand-made rows: what was expected, missed, duplicated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from streambench.analyze.fanout import fanout_summary, format_fanout

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(*events: tuple[str, int, str, str | None, float | None]) -> pl.LazyFrame:
    data: dict[str, list[Any]] = {"kind": [], "conn": [], "cid": [], "status": [],
                                  "latency_ms": [], "ts": []}
    for kind, conn, cid, status, latency in events:
        for key, value in zip(data, (kind, conn, cid, status, latency, T0), strict=True):
            data[key].append(value)
    return pl.LazyFrame(data)


def test_a_missed_member_and_a_duplicate_are_counted_per_group() -> None:
    events = rows(
        ("notify", 0, "0-1", "lobby", None),
        ("delivery", 2, "0-1", "lobby", 4.0),
        ("delivery", 4, "0-1", "lobby", 9.0),
        ("timeout", 6, "0-1", "delivery", None),
        ("error", 2, "0-1", "duplicate", None),
        ("notify", 1, "1-1", "garden", None),
        ("delivery", 3, "1-1", "garden", 2.0),
        ("notify", 1, "1-2", None, None),  # expect: none, not fan-out
        ("timeout", 3, "1-9", None, None),  # an ordinary reply timeout
    )
    block = fanout_summary(events)
    assert block is not None
    assert (block["messages"], block["expected"], block["delivered"], block["missed"]) == \
        (2, 4, 3, 1)
    assert (block["duplicates"], block["late"], block["delivery_ratio"]) == (1, 0, 0.75)
    assert block["last_member_ms"]["max"] == 9.0
    groups = {g["group"]: g for g in block["groups"]}
    assert groups["lobby"]["delivery_ratio"] == round(2 / 3, 6)
    assert groups["garden"]["delivered"] == 1
    assert "fan-out groups delivering least  lobby 66.67%" in "\n".join(format_fanout(block))


def test_a_run_without_fan_out_has_no_block() -> None:
    assert fanout_summary(rows(("send", 0, "0-1", None, None))) is None


def test_the_report_table_lists_the_least_delivered_group_first() -> None:
    from streambench.report.tables import fanout_groups

    block = fanout_summary(rows(
        ("notify", 0, "0-1", "lobby", None), ("delivery", 2, "0-1", "lobby", 4.0),
        ("timeout", 4, "0-1", "delivery", None),
        ("notify", 1, "1-1", "garden", None), ("delivery", 3, "1-1", "garden", 2.0)))
    assert block is not None
    table = fanout_groups(block)
    assert table["group"].to_list() == ["lobby", "garden"]
    assert table["delivery_ratio"].to_list() == [0.5, 1.0]
