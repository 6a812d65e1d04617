"""A run id is claimed atomically: two runs can never share one (issue 16 item 4).

Before, two runs started with the same ``--run-id`` both exited 0, wrote into
the same partitions, and the first run's metrics silently mixed both.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streambench.capture.store import Store
from streambench.errors import RunIdTaken
from tests.capture.storetools import ROOT, cli, error_line
from tests.helpers import write_scenario


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".locks" not in p.parts}


def test_a_second_run_with_the_same_id_is_refused_and_touches_nothing(tmp_path: Path):
    scenario = write_scenario(tmp_path / "s.yaml")
    root = tmp_path / "store"
    first = cli("run", str(scenario), "--store", str(root), "--run-id", "same", "--workers", "1")
    assert first.returncode == 0, first.stderr
    before = digest(root)
    second = cli("run", str(scenario), "--store", str(root), "--run-id", "same",
                 "--workers", "2")
    assert second.returncode == 2
    assert "run id 'same' is already used" in error_line(second)
    assert digest(root) == before


def test_two_runs_started_together_with_one_id_never_mix(tmp_path: Path):
    scenario = write_scenario(tmp_path / "s.yaml")
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "streambench", "run", str(scenario),
                               "--store", str(root), "--run-id", "same", "--workers", "1",
                               "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert sorted(code for code, _ in results) == [0, 2], results
    assert any("already used" in err for code, err in results if code == 2)
    store = Store(root)
    manifest = store.manifest("same")
    assert store.events("same").collect().height == manifest["counts"]["events"]


def test_exactly_one_of_many_simultaneous_claims_wins(store: Store):
    start = threading.Barrier(8)
    won: list[int] = []
    refused: list[int] = []

    def claim(i: int) -> None:
        start.wait()
        try:
            store.claim_run({"run_id": "contested", "status": "running", "pid": i})
            won.append(i)
        except RunIdTaken:
            refused.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(won) == 1
    assert len(refused) == 7
    assert store.manifest("contested")["pid"] == won[0]
    leftovers = [p for p in (Path(store.path) / "runs").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_run_may_rewrite_its_own_manifest_but_not_anothers(store: Store):
    mine = {"run_id": "r", "status": "running", "host": "h", "pid": 1, "started": "t1"}
    store.write_manifest(mine)
    store.write_manifest({**mine, "status": "completed"})
    assert store.manifest("r")["status"] == "completed"
    with pytest.raises(RunIdTaken):
        store.write_manifest({**mine, "pid": 2})
    assert store.manifest("r")["pid"] == 1
