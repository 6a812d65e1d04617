"""The live dashboard's pure parts: charts, grouped alerts, the clock, updates in order,
and relative paths found from a notebook's folder."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from streambench.api import locate
from streambench.report.dashboard import Dashboard
from streambench.report.live import Alert, LiveRun, LiveState, grouped
from streambench.report.livechart import line_chart, nice_ticks

REPO = Path(__file__).resolve().parents[2]


def _alert(fingerprint: str, at: float, severity: str = "warning") -> Alert:
    return Alert(anomaly={"rule": "reply-stall", "severity": severity,
                          "fingerprint": fingerprint, "suggestions": []}, seen_at_s=at)


def _state(sent: int, status: str = "running") -> LiveState:
    return LiveState(run_id="r", scenario="s", status=status, elapsed_s=1.0, total_s=10.0,
                     counts={"sent": sent, "received": sent, "errors": 0, "timeouts": 0,
                             "connects": 1, "disconnects": 0},
                     windows=pl.DataFrame(), alerts=(), parts=0)  # fmt: skip


def test_a_chart_has_readable_labels_units_and_a_gap_for_missing_values() -> None:
    svg = line_chart([0.0, 1.0, 2.0], {"p99": [1.0, None, 3.0], "received/s": [2.0, 2.0, 2.0]},
                     title="latency", unit="milliseconds")
    assert svg.startswith("<svg")
    for text in ("p99", "received/s", "milliseconds", "seconds into the run"):
        assert f">{text}<" in svg
    assert svg.count("<polyline") == 3  # p99 broken in two by the missing value
    assert nice_ticks(0, 187.3) == [0, 50, 100, 150, 200]


def test_alerts_are_grouped_one_line_per_fingerprint_most_severe_first() -> None:
    alerts = (_alert("a", 1), _alert("b", 2, "critical"), _alert("a", 5), _alert("a", 9))
    groups = grouped(alerts)
    assert [(g.first.anomaly["fingerprint"], g.count, g.last_seen_s) for g in groups] == [
        ("b", 1, 2), ("a", 3, 9)]


def test_an_older_update_never_replaces_a_newer_one(tmp_path: Path) -> None:
    from streambench.capture.store import Store
    from streambench.report import dashboard_view

    dash = Dashboard(LiveRun("r", Store(tmp_path)))
    newer, older = _state(500), _state(0)
    dash._apply(2, newer, dashboard_view.render(newer))
    dash._apply(1, older, dashboard_view.render(older))  # a poll that finished late
    assert dash.state is newer
    assert "500" in dash.counters["sent"].value
    assert "another process" in dash.stop_note.value  # attached: it says why no stop


def test_the_clock_counts_from_the_first_send_and_stops_at_the_plan(tmp_path: Path) -> None:
    from streambench.capture.store import Store

    live = LiveRun("r", Store(tmp_path))

    class Progress:
        elapsed_s = 12.5

    assert live._elapsed(Progress(), running=True, total=10.0) == 10.0
    assert live._elapsed(None, running=True, total=10.0) == 0.0  # nothing sent yet


def test_relative_paths_are_found_from_a_notebook_folder(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.chdir(REPO / "notebooks")
    assert locate("scenarios/smoke.yaml") == REPO / "scenarios" / "smoke.yaml"
    assert locate("no/such/file.yaml") == Path("no/such/file.yaml")
    assert os.path.samefile(locate("live_dashboard.ipynb"), "live_dashboard.ipynb")
