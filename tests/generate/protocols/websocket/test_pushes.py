"""Pushes over WebSocket: a subscription on connect, then a server that pushes numbered,
timestamped prices; a number skipped and one sent twice on purpose, and a drop after
which the client subscribes again and the numbering starts over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import polars as pl
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.scenario.model import Scenario


class Ticker:
    """Pushes ``{"op": "price", "n": 1, 2, ...}`` every 10 ms after a subscribe; never
    sends 5, sends 8 twice; closes the first connection once after 20 pushes."""

    def __init__(self) -> None:
        self.dropped = False

    async def handler(self, ws: ServerConnection) -> None:
        if json.loads(await ws.recv()) != {"op": "subscribe", "channel": "prices"}:
            await ws.close(4000, "subscribe first")
            return
        await ws.send(json.dumps({"op": "subscribed"}))
        with contextlib.suppress(ConnectionClosed):  # the run ends: the client leaves
            await self.push(ws)

    async def push(self, ws: ServerConnection) -> None:
        for n in range(1, 10_000):
            if n == 20 and not self.dropped:
                self.dropped = True
                await ws.close(1012, "restarting")
                return
            copies = 0 if n == 5 else 2 if n == 8 else 1
            for _ in range(copies):
                await ws.send(json.dumps({"op": "price", "n": n, "ts": time.time() * 1000}))
            await asyncio.sleep(0.01)


SCENARIO: dict[str, Any] = {
    "name": "ticker",
    "target": {"url": "ws://127.0.0.1:1/prices", "reconnect": {"initial": "10ms"},
               "on_connect": [{"name": "subscribe", "send": {"op": "subscribe",
                                                             "channel": "prices"},
                               "expect": {"op": "subscribed"}, "timeout": "2s"}]},
    "load": {"connections": 2, "rate": 4, "duration": "1s"},
    "message": {"body": {"op": "noop"}, "expect": "none", "cid_field": None,
                "seq_field": None},
    "replies": {"rules": [{"name": "price", "match": {"op": "price"}, "as": "push"}]},
    "stream": {"timestamp": "ts", "timestamp_format": "epoch_ms", "sequence": "n"},
    "capture": {"redaction": {"allow": ["op", "n"]}},
}


async def test_pushes_after_a_subscription_step(store: Store) -> None:
    ticker = Ticker()
    async with serve(ticker.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        doc = {**SCENARIO, "target": {**SCENARIO["target"],
                                      "url": f"ws://127.0.0.1:{port}/prices"}}
        result = await run_async(Scenario.model_validate(doc), store=store)
    s = result.summary
    assert (s["protocol_errors"], s["errors"]) == (0, 0)
    events = store.events(result.run_id).collect()
    pushes = events.filter(pl.col("kind") == "push")
    assert set(pushes["status"]) == {"price"}
    assert pushes.height == s["pushes"]["received"] > 50
    # three streams: connection 0 before and after its drop, connection 1
    assert s["pushes"]["sequence"] == {"missing": 3, "duplicates": 3, "out_of_order": 0,
                                       "streams": 3}
    assert s["pushes"]["staleness_ms"]["p50"] is not None
    assert 5 <= s["pushes"]["gap_ms"]["p50"] < 100
    assert events.filter(pl.col("kind") == "notify").height > 0  # the load still went out
