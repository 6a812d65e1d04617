"""``streambench serve`` as a real child process: ready line, signals, exit codes."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from streambench.target.embedded import child_env

WAIT_S = 15.0  # start-up of a fresh interpreter on a slow machine


async def start_serve(*flags: str) -> tuple[asyncio.subprocess.Process, dict]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streambench",
        "serve",
        "--port",
        "0",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), WAIT_S)
    return process, orjson.loads(line)


async def stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[int, bytes]:
    process.send_signal(sig)
    stdout, _ = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode is not None
    return process.returncode, stdout


def read_rows(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_serve_prints_ready_line_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    faults_out = tmp_path / "faults.jsonl"
    process, ready = await start_serve(
        "--error-rate", "1", "--latency", "10ms", "--faults-out", str(faults_out)
    )
    assert ready["pid"] == process.pid
    assert ready["ws_url"].startswith("ws://127.0.0.1:")
    assert ready["ws_url"].endswith("/echo")
    assert ready["http_url"].startswith("http://127.0.0.1:")
    async with connect(ready["ws_url"]) as ws:
        await ws.send('{"cid": "3-9"}')
        assert orjson.loads(await ws.recv()) == {"cid": "3-9", "error": "injected error"}
    code, rest = await stop(process, signal.SIGTERM)
    assert code == 0
    assert rest == b""  # the ready line is the only stdout
    rows = read_rows(faults_out)
    assert [(r["kind"], r["conn"], r["cid"]) for r in rows] == [
        ("error", 3, "3-9"),
        ("delay", None, None),
    ]
    assert rows[1]["detail"] == "latency=10ms jitter=0ms"


async def test_serve_takes_knobs_from_a_scenario_and_stops_on_sigint(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: knobs\n"
        "load: {rate: 10, duration: 1s}\n"
        "target:\n"
        "  server: {latency: 30ms, jitter: 5ms, seed: 4}\n"
    )
    faults_out = tmp_path / "faults.jsonl"
    process, _ = await start_serve(
        "--scenario", str(scenario), "--jitter", "1ms", "--faults-out", str(faults_out)
    )
    code, _ = await stop(process, signal.SIGINT)
    assert code == 0
    assert [r["detail"] for r in read_rows(faults_out)] == ["latency=30ms jitter=1ms"]


async def test_bad_flag_is_one_clear_line_and_exit_2() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streambench",
        "serve",
        "--drop-rate",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode == 2
    assert stdout == b""
    last = stderr.decode().strip().splitlines()[-1]
    assert "--drop-rate" in last
    assert "probability" in last
