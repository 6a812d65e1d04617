"""``streambench serve --processes N``: one port, several processes, one target."""

from __future__ import annotations

import asyncio
import collections
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl
import psutil
from websockets.asyncio.client import ClientConnection, connect

from streambench.capture.store import Store
from streambench.target.embedded import child_env
from tests.helpers import TIME_SCALE, wait_for, write_scenario
from tests.target.test_serve_cli import WAIT_S, read_rows, stop

ROOT = Path(__file__).resolve().parents[2]


async def start_serve(*flags: str, processes: int) -> tuple[asyncio.subprocess.Process, dict]:
    """``serve --processes N``, its ready line awaited (the helpers start one by one: a
    fresh interpreter each); killed, by its pid, if the line does not come."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streambench", "serve", "--port", "0",
        "--processes", str(processes), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=child_env())
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(),
                                      WAIT_S * processes * TIME_SCALE)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, orjson.loads(line)


def established(pids: list[int], port: int) -> collections.Counter[int]:
    """Accepted connections on ``port`` per process."""
    held: collections.Counter[int] = collections.Counter()
    for pid in pids:
        for c in psutil.Process(pid).net_connections("tcp"):
            if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port:
                held[pid] += 1
    return held


async def test_the_processes_share_the_port_the_load_and_the_ground_truth(tmp_path: Path):
    faults_out = tmp_path / "faults.jsonl"
    process, ready = await start_serve("--error-rate", "0.5", "--faults-out", str(faults_out),
                                       processes=3)
    try:
        errors = await _echo_from_30_clients(ready)
    finally:
        code, _ = await stop(process, signal.SIGTERM)
    assert code == 0
    pids = ready["pids"]
    wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() !=
                             psutil.STATUS_ZOMBIE for p in pids[1:]),
             timeout=WAIT_S, what="the helper processes to stop")
    rows = read_rows(faults_out)
    assert 0 < errors < 30
    assert sum(r["kind"] == "error" for r in rows) == errors  # every process's ground truth


async def _echo_from_30_clients(ready: dict) -> int:
    """Open 30 connections, check the processes share them, send one message each: errors."""
    pids = ready["pids"]
    assert len(set(pids)) == 3
    assert pids[0] == ready["pid"]
    port = int(ready["ws_url"].rsplit(":", 1)[1].split("/")[0])

    async def opened() -> ClientConnection:
        return await connect(ready["ws_url"])

    async with asyncio.TaskGroup() as tg:
        sockets = [tg.create_task(opened()) for _ in range(30)]
    clients = [s.result() for s in sockets]
    errors = 0
    try:
        spread = established(pids, port)
        assert sum(spread.values()) == 30
        assert len(spread) >= 2  # the kernel spread them: more than one process holds some
        for i, ws in enumerate(clients):
            await ws.send(orjson.dumps({"cid": f"{i}-1"}).decode())
            reply = orjson.loads(await ws.recv())
            assert reply["cid"] == f"{i}-1"
            errors += "error" in reply
    finally:
        for ws in clients:
            await ws.close()
    return errors


async def test_kill_9_of_the_first_process_takes_the_helpers_along():
    process, ready = await start_serve(processes=2)
    helper = ready["pids"][1]
    process.kill()
    await process.wait()
    wait_for(lambda: not psutil.pid_exists(helper) or
             psutil.Process(helper).status() == psutil.STATUS_ZOMBIE,
             timeout=WAIT_S, what="the helper to exit with its parent")
    # the helper held the stdout pipe too: read it to its end so the loop closes cleanly
    await asyncio.wait_for(process.communicate(), WAIT_S * TIME_SCALE)


def _low_open_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))


def test_a_run_holds_more_connections_than_one_process_has_descriptors(tmp_path: Path):
    # 300 descriptors per process at most: 600 connections need two client workers and
    # (at 85% per process) three target processes; every one must open and be answered
    path = write_scenario(tmp_path / "wide.yaml",
                          load={"connections": 600, "rate": 600, "duration": "2s"})
    store = Store(tmp_path / "store")
    done = subprocess.run(
        [sys.executable, "-m", "streambench", "run", str(path), "--workers", "2",
         "--store", str(store.root), "--json"],
        capture_output=True, text=True, timeout=180, preexec_fn=_low_open_file_limit,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["sent"] == summary["received"] == 1200
    (run,) = store.runs()
    connects = store.events(run["run_id"]).filter(pl.col("kind") == "connect").collect()
    assert connects["conn"].n_unique() == 600
