"""A full disk (issue 16 item 9): one line, what was kept, ``failed`` and why, no debris.

The store is a 640 KiB tmpfs mounted in a private mount namespace (``unshare``:
as root, or through a user namespace), so nothing outside the test sees it
and nothing needs unmounting. Before, a full disk gave a traceback, no
summary, a manifest left ``running`` and ``.tmp`` parts behind. Compaction on
a full disk fails the same way and keeps every part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streambench.capture.retention import prune
from streambench.capture.store import Store
from tests.capture.storetools import ROOT, finished, write_part
from tests.helpers import write_scenario

TODAY = datetime.now(UTC).date().isoformat()
SCRIPT = """
set -u
mount -t tmpfs -o size=640k tmpfs "$STORE"
python3 -m streambench run "$SCENARIO" --store "$STORE" --workers "$WORKERS" --json \
    > "$OUT/summary.json" 2> "$OUT/stderr.txt"
echo $? > "$OUT/rc"
python3 -m streambench prune --store "$STORE" --json > "$OUT/prune.json"
cp -a "$STORE/." "$OUT/store"
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_fails_the_run_in_one_line_and_keeps_what_was_captured(
        tmp_path: Path, workers: str):
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed: add it to scripts/test")
    scenario = write_scenario(
        tmp_path / "s.yaml", load={"connections": 4, "rate": 4000, "duration": "30s"},
        message={"body": {"text": "{{chars:300}}"}}, capture={
            "redaction": {"allow": ["text"]}, "flush_every": "100ms"})
    store, out = tmp_path / "mnt", tmp_path / "out"
    store.mkdir()
    (out / "store").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STORE": str(store), "OUT": str(out),
           "SCENARIO": str(scenario), "WORKERS": workers}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr

    assert (out / "rc").read_text().strip() == "2"
    stderr = (out / "stderr.txt").read_text()
    assert "Traceback" not in stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("streambench: error:")]
    assert len(errors) == 1, stderr
    assert "no space left on device" in errors[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sent"] > 0  # what was captured before the disk filled

    copy = Store(out / "store")
    (manifest,) = copy.runs()
    assert manifest["status"] == "failed"
    assert "no space left on device" in manifest["error"]
    assert copy.events(manifest["run_id"]).collect().height == manifest["counts"]["events"] > 0
    files = [p for p in (out / "store").rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert [p for p in files if p.name.endswith((".tmp", ".reserve"))] == []
    assert [p for p in files if p.stat().st_size == 0] == []


def test_prune_removes_what_crashes_left_once_their_run_is_over(store: Store):
    finished(store, "over")
    store.write_manifest({"run_id": "live", "status": "running", "host": "elsewhere", "pid": 1,
                          "started": "2026-11-02T00:00:00Z"})
    root = Path(store.path)
    kept = write_part(store, "over", range(3), day=TODAY)
    debris = [Path(kept).with_name(".part-000009.parquet.4242.a1b2c3.tmp"),
              root / "runs" / ".over.json.4242.a1b2c3.tmp", root / "runs" / ".over.reserve",
              root / ".compaction" / "over.deadbeef" / "run_id=over" / "part-000000.parquet"]
    live_tmp = Path(write_part(store, "live", range(3), day=TODAY)).with_name(
        ".part-000001.parquet.4242.d4e5f6.tmp")
    young = Path(kept).with_name(".part-000010.parquet.4242.ffffff.tmp")
    for path in [*debris, live_tmp, young]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
        if path is not young:
            os.utime(path, (time.time() - 3600, time.time() - 3600))

    report = prune(store)
    assert all(not p.exists() for p in debris), [p for p in debris if p.exists()]
    assert live_tmp.exists()  # its run is still being written
    assert young.exists()  # perhaps still being renamed into place
    assert sorted(report.leftovers) == sorted(str(p) for p in debris[:3])
    assert store.events("over").collect().height == 3


COMPACT_ON_A_FULL_DISK = """
set -u
mount -t tmpfs -o size=1m tmpfs "$MNT"
cp -a "$SEED/." "$MNT/store"
dd if=/dev/zero of="$MNT/filler" bs=4k 2> /dev/null  # until the disk is full
python3 -m streambench compact r --store "$MNT/store" 2> "$OUT/stderr.txt"
echo $? > "$OUT/rc"
cp -a "$MNT/store/." "$OUT/store"
"""


def test_compaction_on_a_full_disk_fails_in_one_line_and_loses_nothing(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed: add it to scripts/test")
    seed = Store(tmp_path / "seed")
    finished(seed, "r")
    for i in range(20):
        write_part(seed, "r", range(i * 100, (i + 1) * 100))
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    (out / "store").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNT": str(mnt), "OUT": str(out),
           "SEED": seed.root}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", COMPACT_ON_A_FULL_DISK], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr

    assert (out / "rc").read_text().strip() == "2"
    stderr = (out / "stderr.txt").read_text()
    assert "Traceback" not in stderr
    (line,) = stderr.splitlines()
    assert line.startswith("streambench: error: ")
    assert "no space left on device" in line
    copy = Store(out / "store")
    assert copy.events("r").collect()["seq"].sort().to_list() == list(range(2000))
    assert len(copy.parts("events", "r")) == 20  # the old parts, untouched
    debris = out / "store" / ".compaction"
    assert not debris.exists() or not any(debris.iterdir())

