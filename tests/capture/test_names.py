"""Run ids are checked against one pattern wherever they enter; nothing lands outside the store.

Issue 16 item 1: ``--run-id ../../victim`` used to overwrite ``victim.json`` two
levels above the store; ``x*y``, ``a/b/c`` and absolute paths broke later commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import streambench
from streambench.capture.names import is_run_id
from streambench.capture.store import Store
from streambench.cli import main
from streambench.errors import ConfigError
from tests.capture.storetools import Collected, finished, one_line, write_part
from tests.helpers import write_scenario

BAD_IDS = ["../../victim", "../escaped", "x*y", "a/b/c", "/tmp/absolute", "a[1]", "run id",
           "latest", "", "-flag", "a=b", "é", "x" * 201, ".hidden", "a\nb"]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("run_id", ["../../victim", "x*y", "a/b/c", "/tmp/sb-absolute-victim"])
def test_cli_refuses_a_run_id_that_is_not_a_name_and_writes_nothing(
        tmp_path: Path, run_id: str, capsys: pytest.CaptureFixture[str]):
    work = tmp_path / "a" / "b"
    store = work / "store"
    path = write_scenario(tmp_path / "s.yaml")
    code = main(["run", str(path), "--store", str(store), "--run-id", run_id, "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    one_line(err, "not a valid run id")
    assert files_under(tmp_path) == [path]  # not even the store was created
    assert not Path("/tmp/sb-absolute-victim.json").exists()


def test_the_python_api_refuses_the_same_ids(tmp_path: Path):
    for run_id in ("../../victim", "a/b/c", "x*y"):
        with pytest.raises(ConfigError, match="not a valid run id"):
            streambench.run(write_scenario(tmp_path / "s.yaml"), store=tmp_path / "store",
                            run_id=run_id)
    assert files_under(tmp_path) == [tmp_path / "s.yaml"]


@pytest.mark.parametrize("run_id", BAD_IDS)
def test_every_store_entry_checks_the_run_id(store: Store, tmp_path: Path, run_id: str):
    assert not is_run_id(run_id)
    calls = [lambda: store.write_manifest({"run_id": run_id, "status": "completed"}),
             lambda: store.claim_run({"run_id": run_id}),
             lambda: store.manifest(run_id), lambda: store.events(run_id),
             lambda: store.parts("events", run_id), lambda: store.partition_dir(
                 "events", "2026-11-02", run_id)]
    if run_id == "latest":  # the one reserved word readers accept: it names the newest run
        calls = calls[:2]
    for call in calls:
        with pytest.raises(ConfigError):
            call()
    assert files_under(tmp_path) == []


def test_a_manifest_naming_another_path_is_skipped_with_a_warning(store: Store):
    finished(store, "good")
    runs = Path(store.path) / "runs"
    (runs / "evil.json").write_text(json.dumps({"run_id": "../../victim",
                                                "status": "completed"}))
    (runs / "other.json").write_text(json.dumps({"run_id": "good", "status": "completed"}))
    with Collected("streambench.store") as logged:
        assert [m["run_id"] for m in store.runs()] == ["good"]
    warned = logged.text()
    assert "evil.json" in warned
    assert "other.json" in warned


def test_partition_folders_with_foreign_names_are_not_runs(store: Store):
    finished(store, "good")
    write_part(store, "good", range(3))
    odd = Path(store.path) / "events" / "date=2026-11-02" / "run_id=x*y"
    odd.mkdir()
    (odd / "part-0.parquet").write_bytes(b"PAR1")
    assert [Path(p).parent.name for p in store.parts("events")] == ["run_id=good"]
    assert store.events().collect().height == 3
