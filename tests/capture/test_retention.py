"""prune and forget end to end on real stores (real files, real Parquet)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streambench.capture.keys import create_key_file, destroy_period
from streambench.capture.redact import Redactor
from streambench.capture.retention import forget, prune
from streambench.capture.schema import EVENT_SCHEMA
from streambench.capture.store import Store
from streambench.cli import main
from streambench.scenario.model import Redaction

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def manifest(store: Store, run_id: str, *, days: int = 14, status: str = "completed",
             redaction: Redaction | None = None) -> None:
    capture = {"retention_days": days,
               "redaction": (redaction or Redaction()).model_dump(mode="json")}
    store.write_manifest({"run_id": run_id, "status": status, "started": "2026-11-01T00:00:00Z",
                          "scenario": {"name": "t", "capture": capture}})


def write_part(store: Store, run_id: str, day: str, payloads: list[str], *,
               part: int = 0, redactor: Redactor | None = None) -> Path:
    n = len(payloads)
    when = datetime.fromisoformat(f"{day}T10:00:00+00:00")
    columns = {"run_id": [run_id] * n, "ts": [when] * n, "kind": ["recv"] * n,
               "protocol": ["websocket"] * n, "conn": [0] * n, "seq": list(range(n)),
               "payload": payloads}
    table = pa.table({f.name: pa.array(columns.get(f.name, [None] * n), f.type)
                      for f in EVENT_SCHEMA}, schema=EVENT_SCHEMA)
    if redactor is not None:
        table = redactor.redact_table(table)
    directory = Path(store.partition_dir("events", day, run_id))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{part:05d}.parquet"
    pq.write_table(table.drop_columns(["run_id"]), path)
    return path


def test_prune_deletes_only_partitions_older_than_each_runs_retention(store: Store):
    manifest(store, "short", days=7)
    manifest(store, "long", days=30)
    old_short = write_part(store, "short", "2026-11-10", ["{}"])
    kept_short = write_part(store, "short", "2026-11-25", ["{}"])
    kept_long = write_part(store, "long", "2026-11-10", ["{}"])
    orphan = write_part(store, "gone", "2026-11-01", ["{}"])  # no manifest: 14 days

    dry = prune(store, now=NOW, dry_run=True)
    assert {(p["run_id"], p["date"]) for p in dry.partitions} == {
        ("short", "2026-11-10"), ("gone", "2026-11-01")}
    assert old_short.exists()
    assert orphan.exists()

    expected_bytes = old_short.stat().st_size + orphan.stat().st_size
    report = prune(store, now=NOW)
    assert report.bytes_freed == expected_bytes
    assert dry.bytes_freed == expected_bytes
    assert not old_short.exists()
    assert not orphan.exists()
    assert not old_short.parent.exists()  # empty run and date directories removed
    assert kept_short.exists()
    assert kept_long.exists()
    assert store.events("short").collect().height == 1


def test_prune_never_follows_a_symlink_out_of_the_store(store: Store, tmp_path: Path):
    manifest(store, "r", days=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "part-00000.parquet"
    precious.write_bytes(b"not yours")
    run_dir = Path(store.partition_dir("events", "2026-01-01", "r"))
    run_dir.parent.mkdir(parents=True)
    run_dir.symlink_to(outside, target_is_directory=True)
    linked_day = Path(store.join("events", "date=2026-01-02"))
    linked_day.symlink_to(outside, target_is_directory=True)

    report = prune(store, now=NOW)
    assert precious.read_bytes() == b"not yours"
    assert sorted(report.skipped) == sorted([str(run_dir), str(linked_day)])


def test_prune_is_safe_while_a_run_is_writing(store: Store):
    manifest(store, "live", days=3, status="running")
    fresh = write_part(store, "live", "2026-11-29", ["{}"])
    old = write_part(store, "live", "2026-11-01", ["{}"])
    tmp = old.parent / ".part-00001.parquet.1234.tmp"
    tmp.write_bytes(b"being written")

    report = prune(store, now=NOW)
    assert fresh.exists()
    assert not old.exists()
    assert tmp.read_bytes() == b"being written"  # never touched; its directory stays
    assert [p["files"] for p in report.partitions] == [1]


def test_forget_removes_the_subjects_rows_in_every_period_held(store: Store, tmp_path: Path):
    keys = create_key_file(tmp_path / "keys.json")
    policy = Redaction(allow=("text",), hash=("user_id",), key_file=str(keys))
    manifest(store, "a", redaction=policy)
    manifest(store, "b", redaction=policy)
    redactor = Redactor(policy)

    def body(user: str) -> str:
        return json.dumps({"user_id": user, "text": "hi"})

    write_part(store, "a", "2026-10-30", [body("u-1"), body("u-2")], redactor=redactor)
    write_part(store, "a", "2026-11-02", [body("u-1"), body("u-1"), body("u-3")],
               redactor=redactor)
    only_subject = write_part(store, "b", "2026-11-03", [body("u-1")], redactor=redactor)
    write_part(store, "b", "2026-11-03", [body("u-4")], part=1, redactor=redactor)

    report = forget(store, subject="u-1")
    assert report.rows_removed == {"a": 3, "b": 1}
    assert report.periods_searched == ["2026-10", "2026-11"]
    assert report.parts_deleted == 1
    assert not only_subject.exists()
    assert store.events("a").collect().height == 2
    assert forget(store, subject="u-1").rows_removed == {}  # nothing left to find
    leftovers = [f for f in os.listdir(Path(store.path)) if f.endswith(".tmp")]
    assert leftovers == []

    destroy_period(keys, "2026-10")
    report = forget(store, subject="u-2")
    assert report.rows_removed == {}  # October's key is gone: unlinkable
    assert report.periods_without_key == ["2026-10"]


def test_forget_reports_runs_whose_key_is_not_here(store: Store,
                                                   monkeypatch: pytest.MonkeyPatch):
    manifest(store, "env", redaction=Redaction(hash=("user_id",)))
    monkeypatch.delenv("STREAMBENCH_HASH_KEY")
    assert forget(store, subject="u-1").runs_without_key == ["env"]


def test_cli_prune_and_forget(store: Store, capsys: pytest.CaptureFixture[str]):
    manifest(store, "r", days=1, redaction=Redaction(hash=("user_id",)))
    write_part(store, "r", "2020-01-01", ['{"user_id": "x"}'])
    assert main(["prune", "--store", store.root, "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is True
    assert [p["date"] for p in report["partitions"]] == ["2020-01-01"]
    assert main(["forget", "--subject", "x", "--store", store.root]) == 0
    assert "removed 0 rows" in capsys.readouterr().out
