"""Streaming (many time slices) and in-memory (one slice) analysis give the same answers.

A run with every kind of fault is written to a real Parquet store in many
parts, then analysed twice: whole (``slice_rows=None``) and a few hundred
events at a time, as a run larger than memory is. Everything a user sees must
be identical: metrics, windows of several lengths, schemas, anomalies, SLO
verdicts, the comparison, the run summary and the report tables.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from streambench.analyze import check_slo, compare_runs, detect_anomalies, metrics
from streambench.analyze.facts import run_facts, slices
from streambench.analyze.summary import summarize
from streambench.capture.store import Store
from streambench.report import tables
from streambench.testing.synth import synth_run, write_tables
from tests.analyze.helpers import InjectedFault, SyntheticRun, write_run

FAULTS = tuple(InjectedFault(kind, 3 + 3.5 * i, 1.5, intensity) for i, (kind, intensity) in
               enumerate([("stall", 1), ("drop", 0.2), ("error", 0.1), ("disconnect", 2),
                          ("delay", 60), ("duplicate", 0.1), ("reorder", 0.2),
                          ("schema_drift", 0.3), ("malformed", 0.1), ("burst", 2)]))  # fmt: skip
SMALL = 300  # events per slice: dozens of slices for this run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("store")
    for run_id, seed in (("base", 1), ("faulty", 2)):
        run = SyntheticRun(run_id=run_id, scenario="ooc", duration=40, rate=120, connections=5,
                           seed=seed, faults=FAULTS if run_id == "faulty" else ())
        write_run(root, run, part_rows=700)
    return Store(root)


def _measure(store: Store, run_id: str, slice_rows: int | None):
    return metrics(store.events(run_id), manifest=store.manifest(run_id), slice_rows=slice_rows)


def test_the_small_budget_really_slices_the_run(store: Store) -> None:
    facts = run_facts(store.events("faulty"))
    assert len(slices(facts, length_ns=10**9, slice_rows=SMALL)) > 20
    assert len(slices(facts, length_ns=10**9, slice_rows=None)) == 1


def test_metrics_windows_and_anomalies_are_identical(store: Store) -> None:
    whole, sliced = _measure(store, "faulty", None), _measure(store, "faulty", SMALL)
    assert whole.run == sliced.run
    assert whole.windows.equals(sliced.windows)
    assert whole.schemas.equals(sliced.schemas)
    for length in (0.5, 10.0):
        assert whole.windows_for(length).equals(sliced.windows_for(length))
        assert whole.shapes_for(length).equals(sliced.shapes_for(length))
    found = [a.to_dict() for a in detect_anomalies(whole, fixes=())]
    assert found == [a.to_dict() for a in detect_anomalies(sliced, fixes=())]
    assert {a["rule"] for a in found} >= {"reply-stall", "lost-replies", "schema-drift",
                                          "duplicate-replies", "error-replies"}  # fmt: skip


def test_slo_and_comparison_are_identical(store: Store) -> None:
    slo = {"p99_ms": 50, "error_rate": 0.01, "windows": [{"p95_ms": 20, "window": "5s"}]}
    verdicts = [check_slo(_measure(store, "faulty", size), slo=slo).to_dict()
                for size in (None, SMALL)]  # fmt: skip
    assert verdicts[0] == verdicts[1]
    comparisons = [compare_runs(_measure(store, "base", size), _measure(store, "faulty", size),
                                resamples=50).to_dict() for size in (None, SMALL)]  # fmt: skip
    assert comparisons[0] == comparisons[1]
    assert comparisons[0]["regressed"]


def test_summary_and_report_tables_are_identical(store: Store) -> None:
    events, manifest = store.events("faulty"), store.manifest("faulty")
    assert summarize(events, manifest, slice_rows=None) == summarize(events, manifest,
                                                                     slice_rows=SMALL)
    curve = tables.percentiles({"faulty": events})
    everything = events.filter(pl.col("kind") == "recv").collect()["latency_ms"].sort()
    assert curve["latency_ms"][-1] <= everything[-1]
    assert tables.histogram({"faulty": events})["share"].sum() == pytest.approx(1.0)


def test_a_part_written_after_analysis_began_is_not_half_read(store: Store, tmp_path: Path
                                                              ) -> None:  # fmt: skip
    # The slices read the store with the run's facts; a reader never sees a temporary
    # part (written under a hidden name, then renamed), so no slice can see half of one.
    folder = Path(store.partition_dir("events", "2024-01-01", "faulty"))
    (folder / ".part-99999.parquet.tmp").write_bytes(b"not parquet yet")
    assert _measure(store, "faulty", SMALL).run == _measure(store, "faulty", None).run


def test_a_run_across_midnight_reads_from_both_date_partitions(tmp_path: Path) -> None:
    # A day-long soak crosses midnight: its events sit in two date partitions, and the
    # slices near midnight read from both. The answers are those of the same events
    # written in one partition.
    run = SyntheticRun(run_id="night", scenario="ooc", duration=20, rate=100, connections=3,
                       start=datetime(2024, 1, 1, 23, 59, 50, tzinfo=UTC), seed=3,
                       faults=(InjectedFault("drop", 8, 4, 0.3),))  # fmt: skip
    events, faults, manifest = synth_run(run)
    midnight = datetime(2024, 1, 2, tzinfo=UTC)
    after = pl.col("ts") >= midnight
    write_tables(tmp_path / "split", manifest, events=events.filter(~after), faults=faults)
    write_tables(tmp_path / "late", {**manifest, "started": midnight.isoformat()},
                 events=events.filter(after), faults=faults.clear())  # fmt: skip
    shutil.move(tmp_path / "late" / "events" / "date=2024-01-02", tmp_path / "split" / "events")
    write_tables(tmp_path / "one", manifest, events=events, faults=faults)
    split, one = Store(tmp_path / "split"), Store(tmp_path / "one")
    assert {p.name for p in (tmp_path / "split" / "events").iterdir()} == {
        "date=2024-01-01", "date=2024-01-02"}
    whole = metrics(one.events("night"), manifest=manifest, slice_rows=None)
    sliced = metrics(split.events("night"), manifest=manifest, slice_rows=SMALL)
    assert sliced.run == whole.run
    assert sliced.windows.equals(whole.windows)
    assert whole.run["lost"] > 0
    assert [a.to_dict() for a in detect_anomalies(sliced, fixes=())] == [
        a.to_dict() for a in detect_anomalies(whole, fixes=())]
