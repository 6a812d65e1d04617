"""Tables from events and the charts drawn from them, rendered offline to SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from streambench.report import charts, tables


def _events(latencies: list[float], errors: dict[str, int] | None = None) -> pl.LazyFrame:
    rows = [{"kind": "recv", "latency_ms": v, "status": None} for v in latencies]
    for status, count in (errors or {}).items():
        kind = "timeout" if status == "timeout" else "error"
        rows += [{"kind": kind, "latency_ms": None, "status": None if kind == "timeout"
                  else status}] * count  # fmt: skip
    return pl.LazyFrame(rows, schema={"kind": pl.String, "latency_ms": pl.Float64,
                                      "status": pl.String})  # fmt: skip


def test_percentiles_are_exact_nearest_rank_and_stop_at_the_sample_size() -> None:
    table = tables.percentiles({"a": _events([float(v) for v in range(1, 101)])})
    assert table["nines"].max() == pytest.approx(2.0)  # 100 replies support 99%
    at = dict(zip(table["percentile"].round(6), table["latency_ms"], strict=True))
    assert at[0.0] == 1.0
    assert at[90.0] == 90.0
    assert at[99.0] == 99.0


def test_histogram_shares_sum_to_one_per_run() -> None:
    table = tables.histogram({"a": _events([1.0, 2.0, 3.0, 50.0]), "b": _events([10.0])})
    sums = table.group_by("run").agg(pl.col("share").sum()).sort("run")
    assert sums["share"].to_list() == pytest.approx([1.0, 1.0])


def test_error_kinds_counts_statuses_and_timeouts() -> None:
    table = tables.error_kinds(_events([1.0], {"error_reply": 3, "timeout": 2, "disconnected": 1}))
    assert table.rows() == [("error_reply", 3), ("timeout", 2), ("disconnected", 1)]


def test_anomaly_table_flattens_evidence_and_fixes() -> None:
    anomaly = {"rule": "reply-stall", "kind": "stall", "severity": "critical",
               "start": "2026-01-01T00:00:01Z", "end": "2026-01-01T00:00:03.5Z",
               "fingerprint": "reply-stall:chat", "evidence": {"silence_s": 2.5},
               "injected": ["stall"],
               "suggestions": [{"fix": "more-workers", "title": "More workers",
                                "confidence": 0.42}]}  # fmt: skip
    row = tables.anomaly_table([anomaly]).row(0, named=True)
    assert row["seconds"] == 2.5
    assert row["evidence"] == "silence_s=2.5"
    assert row["suggested_fixes"] == "More workers (42%)"
    assert row["injected"] == "stall"


def test_html_table_tints_verdicts_and_escapes_text() -> None:
    page = tables.to_html(pl.DataFrame({"check": ["<p95>"], "verdict": ["fail"]}))
    assert "&lt;p95&gt;" in page
    assert "background:#fce8e6" in page


def _windows() -> pl.DataFrame:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return pl.DataFrame({
        "start": [start + timedelta(seconds=i) for i in range(4)],
        "p50_ms": [1.0, 2.0, 3.0, 2.0], "p95_ms": [2.0, 4.0, 9.0, 3.0],
        "p99_ms": [3.0, 5.0, 12.0, 4.0], "throughput_sent": [100.0] * 4,
        "throughput_recv": [100.0, 90.0, 20.0, 100.0], "error_rate": [0.0, 0.01, 0.2, 0.0],
        "timeout_rate": [0.0] * 4, "connects": [4, 0, 0, 1], "reconnects": [0, 0, 0, 1],
        "disconnects": [0, 0, 1, 0],
    })  # fmt: skip


@pytest.mark.parametrize("make", [
    lambda w: charts.latency_over_time(w, anomalies=[{"start": "2026-01-01T00:00:02Z",
                                                      "end": "2026-01-01T00:00:03Z",
                                                      "rule": "stall"}]),
    charts.throughput,
    charts.error_rate,
    charts.connection_churn,
    lambda w: charts.live_series(w, columns=("p95_ms",), title="t", y_title="ms"),
], ids=["latency", "throughput", "error_rate", "churn", "live"])  # fmt: skip
def test_window_charts_render_to_svg_without_a_browser(make: object) -> None:
    svg = charts.to_svg(make(_windows()))  # type: ignore[operator]
    assert svg.startswith("<svg")
    assert "role-mark" in svg
    assert "http" not in svg.replace("http://www.w3.org/", "")  # no external references


def test_push_streams_has_a_row_per_stream_with_its_gaps_staleness_and_sequence() -> None:
    ms = 1_000_000
    t0 = 1_700_000_000_000 * ms
    rows = [{"kind": "push", "conn": conn, "cid": None, "seq": n, "ts": t0 + at * ms,
             "intended_ns": None if prev is None else t0 + prev * ms,
             "sent_ns": t0 + (at - 2) * ms}
            for conn, n, at, prev in [(0, 1, 100, None), (0, 2, 150, 100), (0, 4, 250, 150),
                                      (1, 1, 100, None), (1, 1, 130, 100)]]
    frame = pl.DataFrame(rows, schema={"kind": pl.String, "conn": pl.Int32, "cid": pl.String,
                                       "seq": pl.Int64, "ts": pl.Int64, "intended_ns": pl.Int64,
                                       "sent_ns": pl.Int64})
    events = frame.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC"))).lazy()
    table = tables.push_streams(events)
    assert table.select("conn", "pushes", "gap_p50_ms", "gap_max_ms", "staleness_p99_ms",
                        "missing", "duplicates").rows() == [
        (0, 3, 50.0, 100.0, 2.0, 1, 0), (1, 2, 30.0, 30.0, 2.0, 0, 1)]
    assert tables.push_streams(events.filter(pl.col("kind") == "send")).height == 0
