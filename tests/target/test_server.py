"""The target over real sockets: echo, HTTP, SSE and every fault knob."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streambench.scenario.model import ServerFaults
from streambench.target.knobs import Action, ServerFaultPlan

WAIT_S = 5.0  # upper bound on any single wait; tests finish far sooner


def message(conn: int, seq: int) -> str:
    return orjson.dumps({"cid": f"{conn}-{seq}", "text": "hello"}).decode()


async def test_websocket_echoes_text_and_binary(serve) -> None:
    server, _ = await serve()
    async with connect(server.ws_url) as ws:
        await ws.send("plain text, not JSON")
        assert await ws.recv() == "plain text, not JSON"
        await ws.send(b"\x00\xffbinary")
        assert await ws.recv() == b"\x00\xffbinary"
    assert server.ws_url.startswith("ws://127.0.0.1:")
    assert server.stats["messages"] == server.stats["replies"] == 2
    assert server.stats["connections"] == 1


async def test_http_echo_health_and_sse(serve) -> None:
    server, _ = await serve()
    async with aiohttp.ClientSession() as http:
        body = b'{"cid": "0-1"}'
        headers = {"Content-Type": "application/json"}
        async with http.post(server.http_url + "any/path", data=body, headers=headers) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/json"
            assert await r.read() == body
        async with http.put(server.http_url, data=b"raw") as r:
            assert (r.status, await r.read()) == (200, b"raw")
        async with http.get(server.http_url + "health") as r:
            assert await r.json() == {"ok": True}
        async with http.get(server.http_url + "sse?count=3&interval=10ms") as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            events = [orjson.loads(line[6:]) for line in (await r.text()).split("\n\n") if line]
        assert [e["seq"] for e in events] == [0, 1, 2]
        assert all(isinstance(e["ts_ns"], int) for e in events)
        async with http.get(server.http_url + "sse?count=lots") as r:
            assert r.status == 400


async def test_latency_delays_each_reply_without_serialising(serve) -> None:
    server, rows = await serve(latency=0.05)
    async with connect(server.ws_url) as ws:
        start = time.perf_counter()
        await ws.send(message(0, 0))
        await ws.recv()
        assert time.perf_counter() - start >= 0.05
        start = time.perf_counter()
        for seq in range(10):
            await ws.send(message(0, seq))
        replies = [orjson.loads(await ws.recv())["cid"] for _ in range(10)]
        elapsed = time.perf_counter() - start
    assert replies == [f"0-{seq}" for seq in range(10)]  # order kept when jitter is 0
    assert 0.05 <= elapsed < 0.4  # ten 50 ms sleeps in a row would take 0.5 s
    await server.close()
    assert [r["kind"] for r in rows] == ["delay"]
    assert rows[0]["detail"] == "latency=50ms jitter=0ms"
    assert rows[0]["start_ns"] < rows[0]["end_ns"]
    assert rows[0]["conn"] is None


async def test_stall_holds_replies_then_releases_them(serve) -> None:
    server, rows = await serve(stall_every=0.3, stall_for=0.15)
    sent_ns: dict[str, int] = {}
    received_ns: dict[str, int] = {}
    async with connect(server.ws_url) as ws:

        async def receive() -> None:
            while len(received_ns) < 50:
                reply = orjson.loads(await ws.recv())
                received_ns[reply["cid"]] = time.time_ns()

        receiver = asyncio.create_task(receive())
        for seq in range(50):  # paced over ~0.5 s so some messages land inside the stall
            sent_ns[f"0-{seq}"] = time.time_ns()
            await ws.send(message(0, seq))
            await asyncio.sleep(0.01)
        await asyncio.wait_for(receiver, WAIT_S)
    stall = next(r for r in rows if r["kind"] == "stall")
    assert stall["end_ns"] - stall["start_ns"] == pytest.approx(150e6, abs=1e6)
    margin = 2_000_000  # 2 ms from the window edges: which side a message lands is a race
    inside = range(stall["start_ns"] + margin, stall["end_ns"] - margin)
    held = [cid for cid, t in sent_ns.items() if t in inside]
    assert len(held) >= 5
    assert all(received_ns[cid] >= stall["end_ns"] for cid in held)
    assert len(received_ns) == 50  # all released, none lost


async def _run_with_faults(
    serve, faults: ServerFaults, *, send: int, expect: int
) -> tuple[list, list, ConnectionClosed | None]:
    """Pipeline ``send`` messages; read ``expect`` replies or up to the connection's end."""
    server, rows = await serve(**faults.model_dump())
    replies: list[dict] = []
    closed = None
    async with connect(server.ws_url) as ws:
        for seq in range(send):
            await ws.send(message(0, seq))
        try:
            async with asyncio.timeout(WAIT_S):
                while len(replies) < expect:
                    replies.append(orjson.loads(await ws.recv()))
        except ConnectionClosed as exc:
            closed = exc
    return replies, rows, closed


async def test_drop_and_error_follow_the_seeded_plan(serve) -> None:
    faults = ServerFaults(drop_rate=0.1, error_rate=0.1, seed=42)
    plan = ServerFaultPlan(faults)
    expected = [plan.action() for _ in range(200)]
    expect = 200 - expected.count(Action.DROP)
    replies, rows, closed = await _run_with_faults(serve, faults, send=200, expect=expect)
    assert closed is None
    dropped = {f"0-{i}" for i, a in enumerate(expected) if a is Action.DROP}
    errored = {f"0-{i}" for i, a in enumerate(expected) if a is Action.ERROR}
    assert {r["cid"] for r in replies} == {f"0-{i}" for i in range(200)} - dropped
    assert {r["cid"] for r in replies if r.get("error") == "injected error"} == errored
    assert {r["cid"] for r in rows if r["kind"] == "drop"} == dropped
    assert {r["cid"] for r in rows if r["kind"] == "error"} == errored
    assert all(r["conn"] == 0 and r["source"] == "target" for r in rows)
    again, _, _ = await _run_with_faults(serve, faults, send=200, expect=expect)
    assert again == replies


async def test_disconnect_rate_aborts_at_the_planned_message(serve) -> None:
    faults = ServerFaults(disconnect_rate=0.05, seed=5)
    plan = ServerFaultPlan(faults)
    first = next(i for i in range(1000) if plan.action() is Action.DISCONNECT)
    count = first + 20
    replies, rows, closed = await _run_with_faults(serve, faults, send=count, expect=count)
    assert closed is not None
    assert closed.rcvd is None  # aborted: no close frame
    assert [r["cid"] for r in replies] == [f"0-{i}" for i in range(first)]
    assert [(r["kind"], r["cid"], r["conn"]) for r in rows] == [("disconnect", f"0-{first}", 0)]


async def test_disconnect_every_closes_each_connection_with_1011(serve) -> None:
    server, rows = await serve(disconnect_every=0.2)
    async with connect(server.ws_url) as ws:
        await ws.send(message(7, 0))
        assert orjson.loads(await ws.recv())["cid"] == "7-0"
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1011
    assert [(r["kind"], r["conn"]) for r in rows] == [("disconnect", 7)]


async def test_http_faults(serve) -> None:
    server, rows = await serve(error_rate=1.0, latency=0.03)
    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        async with http.post(server.http_url, data=b'{"cid": "4-2"}') as r:
            assert r.status == 500
            assert await r.json() == {"cid": "4-2", "error": "injected error"}
        assert time.perf_counter() - start >= 0.03
        async with http.get(server.http_url + "health") as r:
            assert r.status == 200  # health is never faulted
    assert [(r["kind"], r["conn"], r["cid"]) for r in rows] == [("error", 4, "4-2")]


async def test_close_says_goodbye_to_open_sockets(serve) -> None:
    server, _ = await serve()
    async with connect(server.ws_url) as ws:
        await server.close()
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT_S)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1001


async def test_http_disconnect_aborts_without_a_response(serve) -> None:
    server, rows = await serve(disconnect_rate=1.0)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await http.post(server.http_url, data=b'{"cid": "6-1"}')
    assert [(r["kind"], r["cid"]) for r in rows] == [("disconnect", "6-1")]
