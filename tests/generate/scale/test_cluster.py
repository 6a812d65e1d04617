"""``streambench run --cluster``: the same shards as tasks on a Dask LocalCluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from streambench.api import execute
from streambench.capture.store import Store
from tests.helpers import (
    kill_worker_1,
    scenario,
    write_scenario,
)

ROOT = Path(__file__).resolve().parents[3]


def test_a_local_cluster_run_keeps_the_contract_of_local_workers(store: Store):
    sc = scenario(load={"connections": 4, "rate": 200, "duration": "1s"})
    result = execute(sc, store=store, cluster="local:2", handle_signals=False)

    assert result.status == "completed"
    assert [m["run_id"] for m in store.runs()] == [result.run_id]
    manifest = store.manifest(result.run_id)
    assert manifest["execution"]["mode"] == "dask"
    assert sorted(manifest["execution"]["workers"]) == ["0", "1"]  # one Dask worker each
    assert len(set(manifest["execution"]["workers"].values())) == 2
    assert [w["conns"] for w in manifest["workers"]] == [[0, 2], [2, 4]]
    events = store.events(result.run_id).collect()
    assert events.height == manifest["counts"]["events"]
    assert sorted(events["worker"].unique()) == [0, 1]
    assert sorted(events["conn"].unique()) == [0, 1, 2, 3]
    assert result.summary["sent"] == result.summary["received"] == 200
    assert events.filter(pl.col("kind") == "send")["cid"].n_unique() == 200


def test_a_dask_worker_killed_by_sigkill_makes_the_run_partial(tmp_path: Path):
    path = write_scenario(tmp_path / "run.yaml",
                          load={"connections": 4, "rate": 200, "duration": "4s"},
                          capture={"redaction": {"allow": ["text"]}, "flush_every": "200ms"})
    store = Store(tmp_path / "store")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streambench", "run", str(path), "--store", store.root,
         "--json", "--cluster", "local:2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,
    )
    workers, out, err = kill_worker_1(proc, store, start_timeout=60)  # a Dask worker process
    assert proc.returncode == 1, err
    (manifest,) = store.runs()
    assert manifest["status"] == "partial"
    (lost,) = manifest["lost_workers"]
    assert lost.startswith(f"worker 1 (dask worker {workers[1]['address']}) died")
    assert json.loads(out)["status"] == "partial"
    assert [w["status"] for w in manifest["workers"]] == ["completed", "lost"]
    assert store.events(manifest["run_id"]).collect().height == manifest["counts"]["events"]


def test_a_bad_cluster_value_is_one_line(tmp_path: Path):
    path = write_scenario(tmp_path / "run.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "streambench", "run", str(path), "--store", str(tmp_path / "s"),
         "--cluster", "local:0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == ("streambench: error: --cluster local:0: expected local:N with "
                           "N >= 1 workers\n")
