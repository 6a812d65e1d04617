"""Store mutations under concurrency: never a silent lost update, never a verdict on a live run.

Issue 16 items 12 (forget while a run writes; two forgets at once), 18 (gates
and ``latest`` on a run still being written) and 19 (``stale`` after kill -9); a
``forget`` or ``prune`` racing a compaction is never undone by it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from streambench.capture.compact import compact_run
from streambench.capture.erase import forget
from streambench.capture.retention import prune
from streambench.capture.store import Store
from streambench.cli import main
from tests.capture.storetools import (
    ROOT,
    cli,
    error_line,
    finished,
    hashing_run,
    one_line,
    users_part,
    write_part,
)
from tests.helpers import wait_for, write_scenario

USERS = ["u-1", "u-2", "u-3", "u-4"]


def user_store(store: Store, *, parts: int) -> int:
    """A finished run whose ``parts`` parts each hold one row of every user; rows written."""
    hashing_run(store, "r")
    for i in range(parts):
        users_part(store, "r", USERS, start=i * len(USERS))
    return parts * len(USERS)


def test_two_forgets_at_once_both_take_effect(store: Store):
    total = user_store(store, parts=60)
    start = threading.Barrier(2)
    removed: dict[str, dict[str, int]] = {}
    failures: list[BaseException] = []

    def erase(user: str) -> None:
        start.wait()  # both begin together: every part is contended
        try:
            removed[user] = forget(store, subject=user).rows_removed
        except BaseException as exc:  # reported below, with the other thread's result
            failures.append(exc)

    threads = [threading.Thread(target=erase, args=(u,)) for u in ("u-1", "u-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert removed == {"u-1": {"r": 60}, "u-2": {"r": 60}}
    assert store.events("r").collect().height == total - 120  # neither erasure undone
    assert forget(store, subject="u-1").rows_removed == {}
    assert forget(store, subject="u-2").rows_removed == {}


def test_forget_during_a_compaction_loses_nothing(store: Store):
    total = user_store(store, parts=20)
    results: dict[str, object] = {}

    def erase() -> None:
        results["forget"] = forget(store, subject="u-3")

    def at(step: str) -> None:
        if step == "merged":  # merged file staged, not yet swapped in: forget starts now
            thread = threading.Thread(target=erase)
            thread.start()
            results["thread"] = thread
            results["waited"] = not _finished_within(thread, 0.5)  # it waits for compaction

    report = compact_run(store, "r", on_step=at)
    thread = results["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(30)
    assert results["waited"] is True
    assert report.files_after == 1
    assert store.events("r").collect().height == total - 20
    assert forget(store, subject="u-3").rows_removed == {}


def test_prune_during_a_compaction_is_never_undone(store: Store):
    """The compaction merged an old partition, then prune deleted it: swapping the merged
    file in now would bring pruned rows back. It must see the change and skip."""
    finished(store, "old", scenario={"capture": {"retention_days": 1}})
    for i in range(10):
        write_part(store, "old", range(i * 10, (i + 1) * 10), day="2020-01-01")
    pruned: dict[str, object] = {}

    def at(step: str) -> None:
        if step == "merged":  # merged file staged, not yet swapped in: prune now
            pruned["report"] = prune(store)

    report = compact_run(store, "old", on_step=at)
    assert report.partitions == []
    assert report.skipped == ["events/date=2020-01-01"]
    assert store.events("old").select(pl.len()).collect().item() == 0
    assert not list((Path(store.path) / "events").rglob("*.parquet"))
    assert not any((Path(store.path) / ".compaction").iterdir())


def _finished_within(thread: threading.Thread, seconds: float) -> bool:
    thread.join(seconds)
    return not thread.is_alive()


def test_gates_refuse_a_run_being_written_latest_skips_it_and_kill_9_marks_it_stale(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    root = tmp_path / "store"
    short = write_scenario(tmp_path / "short.yaml")
    assert main(["run", str(short), "--store", str(root), "--run-id", "done",
                 "--workers", "1"]) == 0
    capsys.readouterr()
    long = write_scenario(tmp_path / "long.yaml",
                          load={"connections": 1, "rate": 20, "duration": "60s"})
    proc = subprocess.Popen([sys.executable, "-m", "streambench", "run", str(long), "--store",
                             str(root), "--run-id", "live", "--workers", "1"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        store = Store(root)
        wait_for(lambda: store.parts("events", "live"), timeout=30, what="the live run's parts")
        for command in (["slo", "live"], ["anomalies", "live", "--no-record"],
                        ["compare", "done", "live"], ["report", "live", "--out",
                                                      str(tmp_path / "r")],
                        ["forget", "--subject", "u-1"], ["compact", "live"]):
            assert main([*command, "--store", str(root)]) == 2, command
            err = capsys.readouterr().err
            one_line(err, "is still being written")
        assert store.resolve_run("latest") == "done"
        assert main(["slo", "latest", "--store", str(root), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["run_id"] == "done"
        assert store.resolve_run("latest", running=True) == "live"  # the live dashboard's
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    done = cli("runs", "--json", "--store", str(root))
    rows = {r["run_id"]: r for r in json.loads(done.stdout)}
    assert rows["live"]["status"] == "aborted"
    assert rows["live"]["stale"] is True
    assert rows["done"]["stale"] is False
    assert main(["compact", "live", "--store", str(root)]) == 0  # a stale run may be compacted
    assert Store(root).events("live").select(pl.len()).collect().item() > 0
    done = cli("slo", "live", "--store", str(root))
    assert "still being written" not in done.stderr


def test_a_gate_error_is_exit_2_not_a_breach(tmp_path: Path):
    store = Store(tmp_path / "store")
    store.write_manifest({"run_id": "w", "status": "running", "host": "another-host",
                          "pid": 1, "started": "2026-11-02T00:00:00Z"})
    done = cli("slo", "w", "--store", store.root)
    assert done.returncode == 2
    assert "run w in store" in error_line(done)
