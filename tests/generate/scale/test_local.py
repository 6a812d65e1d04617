"""``streambench run --workers N``: one run over several processes, real sockets and files."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl

from streambench.api import execute
from streambench.capture.merge import leaves
from streambench.capture.store import Store
from streambench.generate.engine.progress import Progress
from streambench.generate.engine.schedule import schedule
from streambench.generate.scale.shards import (
    PART_STRIDE,
    merge_counts,
    merge_progress,
    raise_open_files,
    split,
)
from tests.helpers import (
    TIME_SCALE,
    kill_worker_1,
    parts_of,
    scenario,
    wait_for,
    write_scenario,
)

ROOT = Path(__file__).resolve().parents[3]


# -- pure parts -------------------------------------------------------------------
def test_split_covers_every_connection_once_and_never_makes_an_empty_shard():
    assert split(10, 3) == [(0, 3), (3, 3), (6, 4)]
    assert split(2, 8) == [(0, 1), (1, 1)]
    for connections in (1, 7, 100):
        for workers in (1, 2, 5):
            shards = split(connections, workers)
            covered = [c for offset, count in shards for c in range(offset, offset + count)]
            assert covered == list(range(connections))
            assert all(count > 0 for _, count in shards)


def test_progress_of_the_shards_adds_up_to_one_line():
    one = {"elapsed_s": 1.0, "total_s": 5, "sent": 10, "received": 9, "errors": 1,
           "timeouts": 0, "rate": 10.0, "p95_ms": 2.0, "lag_ms": None, "final": False}
    two = {**one, "elapsed_s": 1.2, "sent": 5, "received": 5, "errors": 0, "rate": 5.0,
           "p95_ms": 3.0, "lag_ms": 0.5}
    line = merge_progress({0: one, 1: two}, total_s=5, final=True)
    assert line == Progress(elapsed_s=1.2, total_s=5, sent=15, received=14, errors=1,
                            timeouts=0, rate=15.0, p95_ms=3.0, lag_ms=0.5, final=True)


def test_counts_and_redaction_are_summed():
    counts, redaction = merge_counts([
        {"events": 3, "parts": 1, "redaction": {"hashed": 2}},
        {"events": 4, "parts": 2, "faults": 1, "redaction": {"hashed": 1}}])
    assert counts == {"events": 7, "event_bytes": 0, "parts": 3, "faults": 1}
    assert redaction == {"hashed": 3}


def test_the_open_file_limit_is_raised_to_the_hard_limit():
    soft, hard = raise_open_files()
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard in (resource.RLIM_INFINITY, soft)


# -- a run over two processes ------------------------------------------------------
def test_two_workers_make_one_run_that_reconciles(store: Store):
    sc = scenario(load={"connections": 4, "rate": 200, "duration": "1s"})
    lines: list[Progress] = []
    result = execute(sc, store=store, workers=2, on_progress=lines.append,
                     handle_signals=False)

    assert result.status == "completed"
    assert [m["run_id"] for m in store.runs()] == [result.run_id]  # one run, one manifest
    manifest = store.manifest(result.run_id)
    assert [w["conns"] for w in manifest["workers"]] == [[0, 2], [2, 4]]
    assert {w["pid"] for w in manifest["workers"]}.isdisjoint({os.getpid()})
    assert manifest["execution"] == {"mode": "workers", "workers": 2}

    events = store.events(result.run_id).collect()
    assert manifest["counts"]["events"] == events.height
    assert manifest["counts"]["events"] == sum(w["events"] for w in manifest["workers"])
    owners = {int(leaf.name.removeprefix("part-").removesuffix(".parquet")) // PART_STRIDE
              for leaf in leaves(store, "events", result.run_id)}  # merged files keep lineage
    assert owners == {0, 1}
    by_conn = events.group_by("conn").agg(pl.col("worker").unique()).sort("conn")
    assert by_conn["conn"].to_list() == [0, 1, 2, 3]  # global indexes, not per shard
    assert by_conn["worker"].to_list() == [[0], [0], [1], [1]]

    summary = result.summary
    assert summary["sent"] == summary["received"] == 200
    sends = events.filter(pl.col("kind") == "send")
    assert sends["cid"].n_unique() == 200
    assert (sends["cid"].str.split("-").list.first().cast(pl.Int32) == sends["conn"]).all()
    assert lines[-1].final
    assert lines[-1].sent == 200

    # one schedule zero for both processes: intended - planned offset is one instant
    zeros = []
    for conn in range(4):
        intended = sends.filter(pl.col("conn") == conn).sort("seq")["intended_ns"].to_list()
        planned = list(schedule(sc.load, seed=sc.seed, conn=conn))
        assert len(intended) == len(planned)
        zeros += [i - p for i, p in zip(intended, planned, strict=True)]
    # clock conversions agree within a few ms (each reads two clocks; a busy machine
    # may preempt a process between the two reads)
    assert max(zeros) - min(zeros) < 5_000_000 * TIME_SCALE


# -- workers that die, runs that are stopped ---------------------------------------
def start_cli(tmp_path: Path, *args: str, duration: str = "60s"
              ) -> tuple[subprocess.Popen[str], Store]:
    path = write_scenario(tmp_path / "run.yaml",
                          load={"connections": 4, "rate": 200, "duration": duration},
                          capture={"redaction": {"allow": ["text"]}, "flush_every": "200ms"})
    store = Store(tmp_path / "store")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streambench", "run", str(path), "--store", store.root,
         "--json", "--workers", "2", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )
    return proc, store


def test_a_worker_killed_by_sigkill_makes_the_run_partial_and_is_named(tmp_path: Path):
    proc, store = start_cli(tmp_path, duration="4s")
    workers, out, err = kill_worker_1(proc, store, start_timeout=30)
    assert proc.returncode == 1, err
    (manifest,) = store.runs()
    assert manifest["status"] == "partial"
    named = f"worker 1 (pid {workers[1]['pid']}) died: killed by SIGKILL"
    assert manifest["lost_workers"] == [named]
    assert named in err
    assert [w["status"] for w in manifest["workers"]] == ["completed", "lost"]
    assert json.loads(out)["status"] == "partial"
    events = store.events(manifest["run_id"]).collect()
    assert events.height == manifest["counts"]["events"]  # what it left is counted
    assert set(events["worker"].unique()) == {0, 1}


def test_ctrl_c_in_the_driver_stops_every_worker_cleanly(tmp_path: Path):
    proc, store = start_cli(tmp_path)
    try:
        wait_for(lambda: parts_of(store, 0) and parts_of(store, 1), timeout=30,
                 what="parts from both workers")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err
    (manifest,) = store.runs()
    assert manifest["status"] == "aborted"
    assert manifest["abort_reason"] == "SIGINT"
    assert [w["status"] for w in manifest["workers"]] == ["aborted", "aborted"]
    events = store.events(manifest["run_id"]).collect()
    assert events.height == manifest["counts"]["events"] > 0
    sent = events.filter(pl.col("kind") == "send").height
    assert json.loads(out)["sent"] == sent
    assert not list(Path(store.path).rglob("*.tmp"))


def test_an_unreachable_target_is_one_line_from_any_number_of_workers(tmp_path: Path):
    proc, store = start_cli(tmp_path, "--target", "ws://127.0.0.1:1/x", duration="1s")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.startswith("streambench: error: target ws://127.0.0.1:1/x is unreachable")
    assert "Traceback" not in err
    (manifest,) = store.runs()
    assert manifest["status"] == "failed"


# -- benchmarks/connections.py works (its scale is for the benchmark, not the suite) ---
def test_the_connections_benchmark_reports_its_figures():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "connections.py"), "--connections", "50",
         "--hold", "1", "--rate", "100", "--heartbeat", "0.5", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["status"] == "completed"
    assert figures["connected"] == 50  # a connect event from every connection
    assert figures["lost"] == 0
    assert figures["sent"] == figures["received"] == 100
    # 50 connections beside the baseline's 10 are within RSS noise: only its presence
    assert isinstance(figures["client_kb_per_conn"], float)
    assert figures["target_rss_mb"] > figures["target_idle_mb"] > 0
    assert figures["connect_s"] is not None
    assert figures["p99_ms"] is not None


def test_the_python_examples_of_docs_scale_run(tmp_path: Path, monkeypatch):
    """Every Python block of docs/scale.md runs as written (Spark's needs a cluster: skipped)."""
    text = (ROOT / "docs" / "scale.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    runnable = [b for b in blocks if "spark." not in b]
    assert len(runnable) >= 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "smoke.yaml").write_text(
        (ROOT / "scenarios" / "smoke.yaml").read_text())
    for block in runnable:
        exec(compile(block, "docs/scale.md", "exec"), {})  # noqa: S102 - our own documentation
    assert Store(tmp_path / "data").runs()


def test_more_workers_than_cores_start_later_by_what_one_core_must_start():
    """6 workers of 16,667 connections on 2 cores: every sender must be running before
    the zero, and 2 cores start 50,000 each (the largest shard's 16,667 would be late)."""
    from types import SimpleNamespace

    from streambench.generate.scale.local import _busiest_core

    shards = [SimpleNamespace(spec=SimpleNamespace(connections=n))
              for n in (16_667,) * 5 + (16_665,)]
    assert _busiest_core(shards, shared_cores=2) == 50_000
    assert _busiest_core(shards, shared_cores=8) == 16_667  # a core each: the largest
    assert _busiest_core(shards, shared_cores=None) == 16_667  # a cluster: own cores


def test_a_shard_closing_its_pipe_while_the_command_reader_reads_is_a_quiet_stop(
        monkeypatch):
    """The worker closes its pipe as it finishes; the reader thread, caught between
    recv()'s check and its read, must take it as a stop, not print a traceback (which
    broke the one-line error of a run whose target is unreachable)."""
    import multiprocessing
    import threading

    from streambench.generate.scale.local import ProcessLink

    ours, theirs = multiprocessing.Pipe()
    entered, closed = threading.Event(), threading.Event()
    read = type(theirs)._recv

    def recv_after_the_close(self, size, *args):
        entered.set()
        closed.wait(5)
        return read(self, size, *args)

    monkeypatch.setattr(type(theirs), "_recv", recv_after_the_close)
    failures: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_type))
    link = ProcessLink(theirs)
    link.listen()
    assert entered.wait(5)
    theirs.close()
    closed.set()
    assert link.wait_stop(5)
    assert failures == []
    ours.close()
