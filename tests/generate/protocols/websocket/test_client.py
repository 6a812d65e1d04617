"""The WebSocket client against misbehaving servers: everything odd is an error row, no crash."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import polars as pl
import pytest
from websockets.asyncio.server import ServerConnection, serve

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import TargetError, TargetUnreachable
from tests.helpers import free_port, scenario

Reply = Callable[[int, str], list[str | bytes]]


async def start(reply: Reply) -> tuple[AsyncIterator[None], str]:
    counter = itertools.count(1)

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            for out in reply(next(counter), str(message)):
                await ws.send(out)

    server = await serve(handler, "127.0.0.1", 0, max_size=None, compression=None)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/echo"


def misbehave(n: int, message: str) -> list[str | bytes]:
    if n == 3:
        return ["this is not json"]
    if n == 5:
        return [message.replace('"cid":"', '"cid":"x')]  # wrong correlation id
    if n == 7:
        return [message, message]  # a duplicate reply
    if n == 9:
        return [b"\xff\xfe binary garbage"]
    return [message]


async def test_garbage_from_the_server_is_recorded_not_fatal(store: Store):
    server, url = await start(misbehave)
    async with server:
        sc = scenario(target={"url": url}, load={"connections": 1, "rate": 50, "duration": "0.4s",
                                                  "timeout": "300ms"})
        result = await run_async(sc, store=store)
    s = result.summary
    assert s["sent"] == 20
    assert s["received"] == 17  # #3, #5 and #9 never got a matching reply...
    assert s["timeouts"] == 3  # ...so they time out
    assert s["protocol_errors"] == 4  # not json, wrong cid, duplicate, binary garbage
    errors = store.events(result.run_id).filter(pl.col("kind") == "error").collect()
    assert sorted(errors["status"]) == ["garbage", "garbage", "unmatched", "unmatched"]


async def test_a_frame_over_the_size_limit_is_an_error_and_the_client_reconnects(store: Store):
    server, url = await start(lambda n, m: ["x" * 300_000] if n == 2 else [m])
    async with server:
        sc = scenario(target={"url": url, "max_message_bytes": 100_000,
                              "reconnect": {"initial": "10ms"}},
                      load={"connections": 1, "rate": 20, "duration": "0.5s",
                            "timeout": "300ms"})
        result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    assert events.filter(pl.col("status") == "too_big").height == 1
    assert events.filter(pl.col("kind") == "connect").height == 2  # reconnected
    assert result.summary["received"] >= 7
    assert result.status == "completed"


async def test_an_unreachable_target_is_one_clear_error(store: Store):
    sc = scenario(target={"url": f"ws://127.0.0.1:{free_port()}/echo"})
    with pytest.raises(TargetUnreachable, match=r"ws://127\.0\.0\.1:\d+/echo is unreachable"):
        await run_async(sc, store=store)
    (manifest,) = store.runs()
    assert manifest["status"] == "failed"
    assert "unreachable" in manifest["error"]


async def test_a_server_that_refuses_the_upgrade_is_named(store: Store):
    async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_websocket, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(TargetError, match="refused the WebSocket upgrade: HTTP 404"):
            await run_async(scenario(target={"url": f"ws://127.0.0.1:{port}/x"}), store=store)


async def test_a_refusal_without_content_length_is_named_not_unreachable(store: Store):
    """A 403 whose body ends when the server closes (no Content-Length), as a Django
    Channels app under daphne answers a missing Origin."""
    async def forbidden(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nForbidden\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(forbidden, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(TargetError, match="refused the WebSocket upgrade: HTTP 403"):
            await run_async(scenario(target={"url": f"ws://127.0.0.1:{port}/ws/chat/"}),
                            store=store)


async def test_backoff_keeps_growing_when_the_server_accepts_and_closes_at_once(store: Store):
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close(1011, "go away")

    server = await serve(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sc = scenario(target={"url": f"ws://127.0.0.1:{port}/",
                              "reconnect": {"initial": "20ms", "max": "2s", "factor": 2}},
                      load={"connections": 1, "rate": 10, "duration": "1.5s",
                            "timeout": "200ms"})
        result = await run_async(sc, store=store)
    connects = store.events(result.run_id).filter(pl.col("kind") == "connect").collect()
    # 20, 40, 80, 160, 320, 640 ms: about 7 connections in 1.5 s, not one every 20 ms
    assert 3 <= connects.height <= 9
    closes = result.summary["closes"]
    assert closes[0]["code"] == "1011"
    assert closes[0]["reason"] == "go away"
