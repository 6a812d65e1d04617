"""A full disk (issue 16 item 9): one line, what was kept, ``failed`` and why, no debris.

The store is a 640 KiB tmpfs mounted in a private mount namespace (``unshare``:
as root, or through a user namespace), so nothing outside the test sees it
and nothing needs unmounting. Before, a full disk gave a traceback, no
summary, a manifest left ``running`` and ``.tmp`` parts behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from streambench.capture.store import Store
from tests.capture.storetools import ROOT
from tests.helpers import write_scenario

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
