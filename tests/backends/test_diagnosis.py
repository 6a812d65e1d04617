"""When replies do not match: the summary says why, the run exits non-zero, and what
the scenario classified is never blamed on the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.backends.conftest import REPO, Serve

pytestmark = pytest.mark.slow


def streambench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")]))}  # this checkout's streambench
    return subprocess.run([sys.executable, "-m", "streambench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def example(name: str, tmp_path: Path, url: str, **changes: object) -> Path:
    doc = yaml.safe_load((REPO / "scenarios" / f"{name}.yaml").read_text())
    doc["target"]["url"] = url
    doc["load"].update(connections=2, rate=50, duration="1s")
    doc.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_replies_that_match_nothing_are_diagnosed_and_fail_the_run(serve: Serve,
                                                                  tmp_path: Path) -> None:
    port = serve("fastapi_ack")
    # the ack carries the id as reply_to; this scenario looks for it at request_id
    path = example("fastapi_ack", tmp_path, f"ws://127.0.0.1:{port}/ws",
                   replies={"id": "request_id"})
    done = streambench("run", str(path), "--store", str(tmp_path / "store"), "--json",
                       "--workers", "1", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    replies = summary["replies"]
    assert replies["matched"] == 0
    assert replies["unmatched"] == replies["arrived"] - replies["classified"].get("notice", 0)
    assert replies["looked_for"] == "the request's id at 'request_id' (text such as \"3-17\")"
    sample = replies["sample"]
    assert sample["status"] == "garbage"
    assert sample["error"] == ("no id at 'request_id'; the reply has ok, reply_to, item.id, "
                               "item.text, error")
    assert sample["payload"] == '{"ok":true}'  # stored as the redaction policy allows
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("streambench:")]
    assert "replies matched no request; looked for the request's id at 'request_id'" in line
    text = streambench("runs", "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert text.returncode == 0


def test_the_summary_text_shows_replies_sample_and_close_codes(serve: Serve,
                                                               tmp_path: Path) -> None:
    port = serve("aiohttp_json")
    path = example("aiohttp_json", tmp_path, f"ws://127.0.0.1:{port}/chat",
                   replies={"id": "id",  # wrong: answers carry cid
                            "rules": [{"name": "welcome", "match": {"type": "welcome"}}]})
    done = streambench("run", str(path), "--store", str(tmp_path / "store"), "--workers", "1",
                       cwd=tmp_path)
    assert done.returncode == 1
    assert "  replies  arrived" in done.stdout
    assert "unmatched sample (garbage: no id at 'id'; the reply has type, text, cid, seq)" \
        in done.stdout
    assert "  closes  1000 x2" in done.stdout


def test_classified_replies_are_not_anomalies(serve: Serve, tmp_path: Path) -> None:
    port = serve("fastapi_ack")
    path = example("fastapi_ack", tmp_path, f"ws://127.0.0.1:{port}/ws")
    store = str(tmp_path / "store")
    done = streambench("run", str(path), "--store", store, "--json", "--workers", "1",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["replies"]["classified"]["notice"] > 0
    found = streambench("anomalies", "latest", "--store", store, "--json", "--no-record",
                        cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    rules = {a["rule"] for a in json.loads(found.stdout)}
    assert not rules & {"unmatched-replies", "duplicate-replies", "schema-drift",
                        "error-replies"}
