"""EmbeddedTarget: the target in a child process for ``url: embedded``."""

from __future__ import annotations

import os

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect

from streambench.errors import TargetError
from streambench.scenario.model import ServerFaults
from streambench.target.embedded import EmbeddedTarget, serve_argv
from streambench.target.knobs import Action, ServerFaultPlan


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_embedded_target_serves_and_reports_its_faults() -> None:
    faults = ServerFaults(latency=0.005, drop_rate=0.3, seed=11)
    plan = ServerFaultPlan(faults)
    dropped = [f"2-{i}" for i in range(20) if plan.action() is Action.DROP]
    target = EmbeddedTarget(faults)
    async with target:
        assert target.pid != os.getpid()
        assert pid_alive(target.pid)
        async with connect(target.ws_url) as ws:
            for seq in range(20):
                await ws.send(orjson.dumps({"cid": f"2-{seq}"}).decode())
            replies = [orjson.loads(await ws.recv())["cid"] for _ in range(20 - len(dropped))]
        async with aiohttp.ClientSession() as http, http.get(target.http_url + "health") as r:
            assert await r.json() == {"ok": True}
    assert not pid_alive(target.pid)
    assert sorted(set(replies) | set(dropped)) == sorted(f"2-{i}" for i in range(20))
    rows = target.faults()
    assert [r["cid"] for r in rows if r["kind"] == "drop"] == dropped
    assert all(r["conn"] == 2 for r in rows if r["kind"] == "drop")
    delay = [r for r in rows if r["kind"] == "delay"]
    assert len(delay) == 1
    assert delay[0]["detail"] == "latency=5ms jitter=0ms"
    assert delay[0]["start_ns"] < delay[0]["end_ns"]


async def test_faults_before_stop_is_an_error() -> None:
    target = EmbeddedTarget(ServerFaults())
    async with target:
        with pytest.raises(RuntimeError, match="once the target stopped"):
            target.faults()
    assert target.faults() == []


async def test_a_target_that_cannot_start_raises_target_error_with_its_stderr() -> None:
    with pytest.raises(TargetError, match=r"exit code 2.*stall_for"):
        async with EmbeddedTarget(ServerFaults(stall_every=1.0, stall_for=2.0)):
            pass


def test_serve_argv_passes_only_knobs_that_differ() -> None:
    argv = serve_argv(ServerFaults(latency=0.02, seed=3), faults_out="/tmp/f")
    assert argv[1:] == [
        "-m",
        "streambench",
        "serve",
        "--port",
        "0",
        "--faults-out",
        "/tmp/f",
        "--exit-with-parent",
        str(os.getpid()),
        "--latency",
        "0.02",
        "--seed",
        "3",
    ]
