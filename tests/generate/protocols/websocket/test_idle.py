"""Idle connections: held for the whole duration, and pinged on their heartbeat."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import polars as pl
import pytest
from aiohttp import WSMsgType, web

from streambench.api import run_async
from streambench.capture.store import Store
from tests.helpers import scenario


@pytest.fixture
async def pinged_server() -> AsyncIterator[tuple[str, collections.Counter[str]]]:
    """An aiohttp echo server that counts the pings of each connection (by its peer)."""
    pings: collections.Counter[str] = collections.Counter()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        peer = str(request.transport.get_extra_info("peername")) if request.transport else "?"
        async for msg in ws:
            if msg.type == WSMsgType.PING:
                pings[peer] += 1
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/echo", echo)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"ws://127.0.0.1:{port}/echo", pings
    await runner.cleanup()


async def test_every_connection_is_pinged_on_its_heartbeat(
        store: Store, pinged_server: tuple[str, collections.Counter[str]]):
    url, pings = pinged_server
    sc = scenario(target={"url": url},
                  load={"connections": 3, "rate": 6, "duration": "1s", "heartbeat": "100ms"})
    result = await run_async(sc, store=store)
    assert result.status == "completed"
    assert len(pings) == 3
    assert all(5 <= count <= 15 for count in pings.values()), pings


async def test_a_connection_is_held_for_the_duration_even_when_it_has_sent_everything(
        store: Store, pinged_server: tuple[str, collections.Counter[str]]):
    url, _ = pinged_server
    # 1 msg/s over 2 connections for 2 s: connection 0 sends at 0.25 s, 1 at 0.75 s, ...
    sc = scenario(target={"url": url}, load={"connections": 2, "rate": 1, "duration": "2s"})
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    held = (events.filter(pl.col("kind").is_in(["connect", "disconnect"]))
            .group_by("conn").agg((pl.col("ts").max() - pl.col("ts").min()).alias("held")))
    assert held.height == 2
    assert all(s >= 1.9 for s in held["held"].dt.total_milliseconds() / 1000)
    assert result.summary["received"] == result.summary["sent"] == 2
