"""Planted secrets and PII against hostile servers: none of it anywhere streambench writes.

Issue 10's planted-secret test and issue 16's planted-PII test, in one. Secrets
are planted in every way a scenario carries them (a URL's user info, a query
value and headers from ``${...}``, a password in ``--target`` on the command
line), the PII corpus (tests/capture/pii_corpus.py) and a user id, a name and a
city in the message body. Two hostile servers, started here, echo all of it back
in every way they can: whole requests, cids, error pages that echo request
headers, HTTP reason phrases, WebSocket close reasons, JSON ``error`` fields,
non-JSON and truncated replies, bytes after the JSON, binary frames, keys
inside allowed objects. Then every byte under the store (Parquet decoded,
manifests, faults), the logs of both runs (debug level) and a rendered report
are searched: nothing planted may be found.

What the name and city stand for: personal data without a shape a scanner could
find. They travel in JSON (replies, and requests echoed in close reasons and
error fields), where the deny-by-default policy drops them; the corpus values,
which have a shape, are also echoed as bare free text (reason phrases, cids).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.helpers import cli_env, store_text
from tests.planted import (
    ARGV_PASSWORD,
    BODY,
    CORPUS,
    FORBIDDEN,
    POLICY,
    SECRETS,
    compact,
    hostile_text,
    serving,
    start_hostile_http,
)

# -- a hostile WebSocket server ------------------------------------------------------

async def ws_handler(ws: ServerConnection) -> None:
    headers = list(ws.request.headers.raw_items()) if ws.request else []
    n = 0
    async for message in ws:
        n += 1
        text = str(message)
        doc = json.loads(text) if text.endswith("}") else {"cid": "?"}
        replies: dict[int, Any] = {
            0: text,  # the request itself: every field of the body
            1: compact({**doc, "cid": CORPUS[n % len(CORPUS)]}),  # a cid the server chose
            2: hostile_text(headers),  # not JSON at all
            3: text + " trailing " + CORPUS[2],  # bytes after the JSON
            4: text[: len(text) // 2],  # truncated
            5: compact({"cid": doc.get("cid"), "error": text + hostile_text(headers)}),
            6: compact({**doc, "text": hostile_text(headers),
                           "notes": {CORPUS[3]: SECRETS["SB_PLANT_KEY"]}}),
            7: hostile_text(headers).encode(),  # a binary frame
            8: compact({"cid": doc.get("cid"), "text": json.loads("[" * 300 + "]" * 300)}),
            9: compact({"cid": text, "text": text}),  # the request inside kept strings
        }
        if n % 11 == 10:  # the close reason echoes the request (at most 123 bytes)
            await ws.close(1011, text[:120])
            return
        await ws.send(replies[n % 10])


@pytest.fixture
def ws_port() -> Iterator[int]:
    with serving(lambda: serve(ws_handler, "127.0.0.1", 0, max_size=None)) as port:
        yield port


# -- a hostile HTTP server ----------------------------------------------------------

@pytest.fixture
def http_port() -> Iterator[int]:
    with serving(start_hostile_http, aiohttp=True) as port:
        yield port


# -- the runs -----------------------------------------------------------------------

def streambench(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "streambench", "--log-level", "debug",
                             "--log-format", "json", *argv, "--store", "st"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(**SECRETS))


def finished(proc: subprocess.Popen[str], *, ok: tuple[int, ...] = (0,)) -> str:
    """The command's stdout and stderr once it exited with one of ``ok``."""
    try:
        out, err = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in ok, err[-2000:]
    return out + err


def scenario_file(path: Path, target: dict[str, Any], **extra: Any) -> Path:
    doc = {"name": path.stem, "target": target,
           "load": {"connections": 2, "rate": 60, "duration": "1s", "timeout": "300ms"},
           "message": {"body": BODY}, "capture": {"redaction": POLICY}, **extra}
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


@pytest.mark.timeout(300)  # two runs and a report rendered by papermill
def test_nothing_planted_reaches_the_store_the_logs_or_a_report(ws_port: int, http_port: int,
                                                                  tmp_path: Path):
    ws = scenario_file(tmp_path / "ws.yaml", {
        "url": f"ws://bot:${{SB_PLANT_PW}}@127.0.0.1:{ws_port}/chat?session=${{SB_PLANT_QS}}",
        "headers": {"Authorization": "Bearer ${SB_PLANT_TOKEN}", "X-Api-Key": "${SB_PLANT_KEY}"},
        "reconnect": {"initial": "10ms", "max": "50ms"},
    }, faults=[{"kind": "malformed", "probability": 0.2}])
    http = scenario_file(tmp_path / "http.yaml", {
        "protocol": "http",
        "headers": {"Authorization": "Bearer ${SB_PLANT_TOKEN}", "X-Api-Key": "${SB_PLANT_KEY}"}})
    target = f"--target=http://admin:{ARGV_PASSWORD}@127.0.0.1:{http_port}/echo"
    runs = [streambench("run", str(ws), cwd=tmp_path),  # side by side: startup dominates
            streambench("run", str(http), target, cwd=tmp_path)]
    logs = [finished(proc, ok=(0, 1)) for proc in runs]  # 1: most replies matched nothing
    logs.append(finished(streambench("report", "latest:ws", "--out", "reports", cwd=tmp_path)))

    stored = store_text(tmp_path / "st")
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "st" / "runs").glob("*.json")]
    assert sorted(m["status"] for m in manifests) == ["completed", "completed"]
    assert any(m["redaction"].get("slow_path") for m in manifests)  # odd replies, counted
    # the servers did their worst: every kind of echo was recorded
    for evidence in ("garbage", "unmatched", "error_reply", "<text:", "<invalid-json:",
                     "<deep-json:", "<email>", "HTTP 403", "<redacted>", "h1:"):
        assert evidence in stored, evidence
    report = "\n".join(p.read_text(errors="replace")
                       for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert "<html" in report
    everything = {"store": stored, "logs": "\n".join(logs), "report": report}
    found = {(where, value) for where, text in everything.items() for value in FORBIDDEN
             if value in text}
    assert not found
