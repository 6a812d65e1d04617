"""Hostile or broken stores: one-line errors or a warning, never a traceback or a wrong answer.

Issue 16 items 14 (glob characters in the store path), 15 (a stray file in
``runs/``, a huge retention), 16 (store errors, empty runs, bad options) and
19 (``--store ''``, ``stale`` after kill -9).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streambench.capture.retention import forget, prune
from streambench.capture.store import Store
from streambench.cli import main
from streambench.errors import ConfigError, StoreError
from tests.capture.storetools import (
    Collected,
    cli,
    error_line,
    finished,
    hashing_run,
    one_line,
    users_part,
    write_part,
)
from tests.helpers import write_scenario


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one real completed run ``r1`` of the embedded target."""
    base = tmp_path_factory.mktemp("real")
    path = write_scenario(base / "s.yaml", slo={"p99_ms": 1000})
    done = cli("run", str(path), "--store", str(base / "store"), "--run-id", "r1",
               "--workers", "1")
    assert done.returncode == 0, done.stderr
    return base / "store"


@pytest.fixture
def copy_of(real_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(real_run, target)
    return target


def test_a_store_path_with_glob_characters_reads_every_run(copy_of: Path, tmp_path: Path):
    odd = tmp_path / "we[ir]d*store?"
    copy_of.rename(odd)
    store = Store(odd)
    assert [m["run_id"] for m in store.runs()] == ["r1"]
    assert store.events("r1").collect().height == store.manifest("r1")["counts"]["events"] > 0
    done = cli("runs", "--json", "--store", str(odd))
    assert [r["run_id"] for r in json.loads(done.stdout)] == ["r1"]


def test_forget_and_prune_find_their_rows_under_a_path_with_glob_characters(
        tmp_path: Path, hash_key: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, ``forget`` removed 0 rows here and said so as a success."""
    store = Store(tmp_path / "we[ir]d*store?")
    hashing_run(store, "r")
    today = datetime.now(UTC).date().isoformat()
    users_part(store, "r", ["u-1", "u-2", "u-1"], start=0, day=today)
    finished(store, "old", scenario={"capture": {"retention_days": 1}})
    write_part(store, "old", range(5), day="2020-01-01")
    assert main(["forget", "--subject", "u-1", "--json", "--store", store.root]) == 0
    assert json.loads(capsys.readouterr().out)["rows_removed"] == {"r": 2}
    assert main(["prune", "--json", "--store", store.root]) == 0
    assert [p["run_id"] for p in json.loads(capsys.readouterr().out)["partitions"]] == ["old"]
    assert store.events().collect().height == 1


def test_a_root_with_hive_like_names_keeps_its_partition_columns(copy_of: Path,
                                                                 tmp_path: Path):
    odd = tmp_path / "date=2020-01-01" / "run_id=x"
    odd.parent.mkdir()
    copy_of.rename(odd)
    events = Store(odd).events("r1").collect()
    assert set(events["run_id"]) == {"r1"}
    assert events.height == Store(odd).manifest("r1")["counts"]["events"]


STRAYS = {"list.json": b"[]", "empty.json": b"", "torn.json": b"{not json",
          "number.json": b'{"run_id": 5}', "string.json": b'"x"',
          "other.json": b'{"run_id": "nope", "status": "completed"}'}


def test_a_stray_file_in_runs_is_skipped_with_a_warning_naming_it(
        copy_of: Path, capsys: pytest.CaptureFixture[str]):
    for name, data in STRAYS.items():
        (copy_of / "runs" / name).write_bytes(data)
    for command in (["runs", "--json"], ["prune", "--json"], ["metrics", "r1", "--json"],
                    ["forget", "--subject", "u-1", "--json"], ["slo", "latest"]):
        assert main([*command, "--store", str(copy_of)]) == 0, command
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if command[0] != "metrics":  # the others list the runs: each stray named once
            assert all(err.count(f"{name}: not a run manifest") == 1 for name in STRAYS), err
    with Collected("streambench.store") as logged:
        assert [m["run_id"] for m in Store(copy_of).runs()] == ["r1"]
    assert all(name in logged.text() for name in STRAYS)


def test_a_retention_of_a_billion_days_never_overflows_prune(store: Store):
    finished(store, "forever", scenario={"capture": {"retention_days": 1_000_000_000}})
    finished(store, "short", scenario={"capture": {"retention_days": 1}})
    kept = write_part(store, "forever", range(2), day="2000-01-01")
    gone = write_part(store, "short", range(2), day="2000-01-01")
    report = prune(store)
    assert [p["run_id"] for p in report.partitions] == ["short"]
    assert os.path.exists(kept)
    assert not os.path.exists(gone)


def test_store_problems_are_one_line_errors(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]):
    scenario = write_scenario(tmp_path / "s.yaml")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (["runs", "--store", str(a_file)], "not a directory"),
        (["run", str(scenario), "--workers", "1", "--store", str(a_file)], "not a directory"),
        (["runs", "--store", "memory://x"], "memory:// store lives inside one process"),
        (["run", str(scenario), "--workers", "1", "--store", "memory://x"], "memory://"),
        (["runs", "--store", ""], "--store: the store root is empty"),
        (["run", str(scenario), "--workers", "1", "--store", ""], "store root is empty"),
        (["prune", "--store", ""], "store root is empty"),
    ]
    default_store = Path.cwd() / "data"  # where an empty root must not fall back to
    before = sorted(default_store.rglob("*"))  # the README's first command fills it
    for args, expected in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        one_line(err, expected)
    assert sorted(default_store.rglob("*")) == before


def test_s3_without_credentials_is_one_line_and_never_leaves_the_machine(tmp_path: Path):
    quiet = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
             "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
             "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
             "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # never a public endpoint
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | quiet
    env = {k: v for k, v in env.items() if v}
    done = subprocess.run(["python3", "-m", "streambench", "runs", "--store",
                           "s3://no-such-bucket/x"], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
                          timeout=120, check=False)
    assert done.returncode == 2
    assert "store s3://no-such-bucket/x: cannot list runs" in error_line(done)


def test_a_read_only_store_is_one_line(copy_of: Path, tmp_path: Path):
    """A read-only bind mount in a private mount namespace (root or user namespaces)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed: add it to scripts/test")
    scenario = write_scenario(tmp_path / "s.yaml")
    inner = (f"mount --bind {copy_of} {copy_of} && mount -o remount,ro,bind {copy_of} && "
             f"python3 -m streambench run {scenario} --workers 1 --store {copy_of} "
             f"--run-id r2; echo rc=$?; python3 -m streambench compact r1 --store {copy_of}; "
             "echo rc=$?")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", inner], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.stdout.split() == ["rc=2", "rc=2"], done.stderr
    assert done.stderr.count("read-only file system") == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert not (copy_of / "runs" / "r2.json").exists()


def test_gates_on_a_run_that_captured_nothing_say_so(copy_of: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    store = Store(copy_of)
    manifest = {**store.manifest("r1"), "run_id": "empty", "counts": {"events": 0}}
    (copy_of / "runs" / "empty.json").write_text(json.dumps(manifest))
    for command in (["anomalies", "empty"], ["slo", "empty"], ["compare", "r1", "empty"],
                    ["report", "empty", "--out", str(tmp_path / "reports")]):
        assert main([*command, "--store", str(copy_of)]) == 2, command
        err = capsys.readouterr().err
        one_line(err, "run empty captured no events")


def test_junit_into_a_missing_folder_is_created_and_a_bad_window_is_refused(
        copy_of: Path, tmp_path: Path):
    junit = tmp_path / "ci" / "reports" / "slo.xml"
    done = cli("slo", "r1", "--junit", str(junit), "--store", str(copy_of))
    assert done.returncode == 0, done.stderr
    assert junit.read_text().startswith("<?xml")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    done = cli("slo", "r1", "--junit", str(blocked / "slo.xml"), "--store", str(copy_of))
    assert done.returncode == 2  # bad input, not a breach (exit 1)
    assert "--junit" in error_line(done)
    done = cli("metrics", "r1", "--window", "0s", "--store", str(copy_of))
    assert done.returncode == 2
    assert "a window must be longer than 0s" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_store_root_is_an_error_not_the_default(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ConfigError, match="empty"):
        Store("")
    with pytest.raises(StoreError, match="memory://"):
        Store("memory://somewhere")


def test_forget_and_prune_refuse_object_stores_in_one_line(tmp_path: Path):
    store = Store("s3://bucket/x")
    with pytest.raises(StoreError, match="local stores only"):
        prune(store)
    with pytest.raises(StoreError, match="local stores only"):
        forget(store, subject="u")
