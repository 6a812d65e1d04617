"""Soak health: process health rows in a real store, the memory-leak rule, the report tables."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from streambench.analyze import detect_anomalies, metrics
from streambench.capture.store import Store
from streambench.cli import main
from streambench.report import charts, tables
from tests.analyze.helpers import health_rows, write_health, write_synthetic


def _store(root: Path, rows: list[dict], run_id: str = "soak") -> Store:
    write_synthetic(root, run_id=run_id, scenario="soak", duration=20, noise=False)
    write_health(root, run_id, rows)
    return Store(root)


def _leaks(store: Store, run_id: str = "soak") -> list:
    measured = metrics(store.events(run_id), manifest=store.manifest(run_id),
                       health=store.health(run_id))  # fmt: skip
    return [a for a in detect_anomalies(measured, fixes=None) if a.rule == "memory-leak"]


def test_steady_growth_of_the_target_is_a_leak_and_a_flat_client_is_not(tmp_path: Path) -> None:
    store = _store(tmp_path, health_rows(minutes=12, growth={"target": 0.3}))
    (leak,) = _leaks(store)
    assert leak.fingerprint == "memory-leak:soak:target"
    assert leak.evidence["source"] == "target"
    assert leak.evidence["growth_pct"] == pytest.approx(100 * 0.3 * 11 / 12, abs=2)
    assert leak.evidence["r2"] > 0.95
    assert leak.suggestions[0].fix == "find-the-leak"


@pytest.mark.parametrize("rows", [
    health_rows(minutes=12, growth={}, step={"client": 0.3}),  # one step, not steady
    health_rows(minutes=12, growth={"target": 0.04}),  # steady but small (under 10%)
    health_rows(minutes=4, growth={"target": 0.5}),  # too short to judge after the warm-up
], ids=["step", "small", "short"])  # fmt: skip
def test_no_leak_from_a_step_small_growth_or_a_short_run(rows: list, tmp_path: Path) -> None:
    assert _leaks(_store(tmp_path, rows)) == []


def test_a_run_without_health_rows_has_nothing_to_judge(tmp_path: Path) -> None:
    write_synthetic(tmp_path, run_id="plain", duration=5)
    store = Store(tmp_path)
    assert store.health("plain").collect().height == 0
    assert _leaks(store, "plain") == []
    assert tables.soak_summary(store.health("plain")).height == 0


def test_report_tables_and_chart(tmp_path: Path) -> None:
    store = _store(tmp_path, health_rows(minutes=12, growth={"target": 0.3}))
    summary = tables.soak_summary(store.health("soak"))
    assert summary["process"].to_list() == ["client 0", "target"]
    growth = dict(zip(summary["process"], summary["growth_pct"], strict=True))
    assert growth["target"] > 20 > abs(growth["client 0"])
    per_minute = tables.soak_health(store.health("soak"), window_s=60)
    assert per_minute.filter(pl.col("process") == "target").height == 12
    svg = charts.to_svg(charts.soak_health(per_minute))
    assert "resident memory (MB)" in svg
    assert "parts written" in svg


def test_the_cli_reads_health_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path, health_rows(minutes=12, growth={"client": 0.25}))
    assert main(["anomalies", "soak", "--store", str(tmp_path), "--json", "--no-record"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [a["fingerprint"] for a in found if a["rule"] == "memory-leak"] == [
        "memory-leak:soak:client"]
