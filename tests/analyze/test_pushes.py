"""Push figures from push rows: gaps, staleness and sequence gaps per stream."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from streambench.analyze.pushes import push_summary, sequence_gaps

MS = 1_000_000
T0 = 1_764_644_645_000 * MS


def rows(*events: tuple[Any, ...]) -> pl.LazyFrame:
    """(kind, ms after T0, conn, cid, seq, previous arrival ms, server stamp ms) -> rows."""
    return pl.DataFrame(
        [{"kind": kind, "ts": dt.datetime.fromtimestamp((T0 + at * MS) / 1e9, dt.UTC),
          "conn": conn, "cid": cid, "seq": seq,
          "intended_ns": None if prev is None else T0 + prev * MS,
          "sent_ns": None if stamp is None else T0 + stamp * MS}
         for kind, at, conn, cid, seq, prev, stamp in events],
        schema={"kind": pl.String, "ts": pl.Datetime("ns", "UTC"), "conn": pl.Int32,
                "cid": pl.String, "seq": pl.Int64, "intended_ns": pl.Int64,
                "sent_ns": pl.Int64}).lazy()


def test_missing_duplicate_and_late_pushes_are_told_apart() -> None:
    events = rows(
        ("connect", 0, 0, None, None, None, None),
        *(("push", i, 0, None, seq, None, None) for i, seq in
          enumerate([1, 2, 4, 3, 3, 7], start=1)),  # 3 late, 3 again, 5 and 6 never
        ("disconnect", 9, 0, None, None, None, None),  # lost: the numbering starts again
        ("push", 10, 0, None, 1, None, None),  # before the connect row (set-up steps)
        ("connect", 10, 0, None, None, None, None),
        *(("push", 10 + i, 0, None, seq, None, None) for i, seq in enumerate([2, 3], start=1)),
        *(("push", i, 1, "sub-1", seq, None, None) for i, seq in enumerate([5, 6, 8], start=1)),
    )
    assert sequence_gaps(events) == {"missing": 3, "duplicates": 1, "out_of_order": 1,
                                     "streams": 3}


def test_gaps_and_staleness_are_percentiles_of_the_push_rows() -> None:
    events = rows(("send", 0, 0, "0-1", 1, None, None),
                  ("push", 100, 0, None, None, None, 98),
                  ("push", 150, 0, None, None, 100, 147),
                  ("push", 350, 0, None, None, 150, 349))
    found = push_summary(events, duration_s=2.0)
    assert found["received"] == 3
    assert found["rate"] == 1.5
    assert found["gap_ms"] == {"p50": 50.0, "p99": 200.0, "max": 200.0}
    assert found["staleness_ms"] == {"p50": 2.0, "p99": 3.0, "max": 3.0}
    assert found["sequence"] is None  # the server numbers nothing


def test_a_run_without_pushes_has_an_empty_block() -> None:
    found = push_summary(rows(("send", 0, 0, "0-1", 1, None, None)), duration_s=1.0)
    assert found == {"received": 0, "rate": 0.0, "streams": 0,
                     "gap_ms": {"p50": None, "p99": None, "max": None},
                     "staleness_ms": None, "sequence": None}
