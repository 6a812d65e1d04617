"""A conversation over WebSocket: a subprotocol, set-up steps that authenticate and join
a room on every connect (values captured and reused), a weighted mix of kinds (some
expecting nothing), raw text frames, and the server's pings answered."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import polars as pl
import pytest
from websockets.asyncio.server import ServerConnection, serve

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.scenario.model import Scenario

TOKEN = "tok-0123456789abcdef"


class ChatServer:
    """Demands chat.v2, auth with TOKEN, a join with the session it issued; drops every
    connection once after 30 messages, so every client reconnects and sets up again."""

    def __init__(self) -> None:
        self.sessions = itertools.count(1)
        self.seen: Counter[str] = Counter()
        self.rooms: set[str] = set()
        self.dropped: set[int] = set()

    async def handler(self, ws: ServerConnection) -> None:
        if ws.subprotocol != "chat.v2":
            await ws.close(4000, "chat.v2 only")
            return
        await ws.send(json.dumps({"type": "hello"}))
        auth = json.loads(await ws.recv())
        if auth != {"type": "auth", "token": TOKEN}:
            await ws.close(4001, "bad token")
            return
        session = f"s-{next(self.sessions)}"
        await ws.send(json.dumps({"type": "auth_ok", "session": {"id": session}}))
        join = json.loads(await ws.recv())
        assert join["session"] == session
        self.rooms.add(join["room"])
        await ws.send(json.dumps({"type": "joined", "room": join["room"]}))
        await self.chat(ws, session, join["room"])

    async def chat(self, ws: ServerConnection, session: str, room: str) -> None:
        count = 0
        async for message in ws:
            count += 1
            if isinstance(message, str) and message.startswith("PING "):
                self.seen["ping"] += 1
                await ws.send("PONG " + message[5:])
                continue
            doc: dict[str, Any] = json.loads(message)
            self.seen[doc["type"]] += 1
            if doc["type"] == "say":
                error = None if doc["session"] == session and doc["room"] == room else "who?"
                await ws.send(json.dumps({"type": "said", "reply_to": doc["id"], "error": error}))
            if count % 7 == 0:
                await ws.send(json.dumps({"type": "ping"}))
            if count == 30 and session not in self.dropped and len(self.dropped) < 2:
                self.dropped.add(session)
                await ws.close(1012, "restarting")


SCENARIO: dict[str, Any] = {
    "name": "conversation",
    "target": {
        "url": "ws://127.0.0.1:1/chat", "subprotocols": ["chat.v2"],
        "reconnect": {"initial": "10ms"},
        "on_connect": [
            {"name": "hello", "expect": {"type": "hello"}, "timeout": "2s"},
            {"name": "auth", "send": {"type": "auth", "token": "${CHAT_TOKEN}"},
             "expect": {"type": "auth_ok"}, "timeout": "2s",
             "capture": {"session": "session.id"}},
            {"name": "join", "send": {"type": "join", "room": "{{room}}",
                                      "session": "{{session}}"},
             "expect": {"type": "joined"}, "timeout": "2s"},
        ],
    },
    "variables": {"room": ["lobby", "news"]},
    "load": {"connections": 2, "rate": 100, "duration": "1.5s", "timeout": "10s"},
    "messages": [
        {"name": "say", "weight": 6, "cid_field": "id", "seq_field": None,
         "body": {"type": "say", "room": "{{room}}", "session": "{{session}}",
                  "text": "{{sentence}}"}},
        {"name": "typing", "weight": 2, "expect": "none", "cid_field": None,
         "seq_field": None, "body": {"type": "typing", "room": "{{room}}"}},
        {"name": "ping", "weight": 2, "body": "PING {{cid}}"},
    ],
    "replies": {"id": "reply_to", "rules": [
        {"name": "pong", "pattern": r"^PONG (?P<id>\S+)$", "as": "answer"},
        {"name": "ping", "match": {"type": "ping"}, "respond": {"type": "pong"}},
    ]},
    "capture": {"redaction": {"allow": ["type", "room"]}},
}


async def test_a_whole_conversation(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_TOKEN", TOKEN)
    chat = ChatServer()
    server = await serve(chat.handler, "127.0.0.1", 0, subprotocols=["chat.v2"])
    port = server.sockets[0].getsockname()[1]
    async with server:
        doc = {**SCENARIO, "target": {**SCENARIO["target"], "url": f"ws://127.0.0.1:{port}/chat"}}
        result = await run_async(Scenario.model_validate(doc), store=store)
    s = result.summary
    events = store.events(result.run_id).collect()
    assert s["protocol_errors"] == 0
    assert s["timeouts"] == 0
    errors = events.filter(pl.col("kind") == "error")
    assert set(errors["status"]) <= {"disconnected", "not_connected"}  # only the drops
    assert s["received"] == s["sent"] - s["errors"] > 100
    assert chat.rooms == {"lobby", "news"}
    assert chat.seen["typing"] == events.filter(pl.col("kind") == "notify").height > 0
    assert chat.seen["pong"] == s["replies"]["classified"]["ping"] > 0  # every ping answered
    steps = events.filter(pl.col("kind") == "step")
    assert Counter(steps["status"]) == {"hello": 4, "auth": 4, "join": 4}  # 2 conns x 2 connects
    assert (steps.filter(pl.col("status") != "hello")["latency_ms"] > 0).all()
    recv = events.filter(pl.col("kind") == "recv")
    assert {"pong", None} == set(recv["status"])  # raw PONGs and JSON acks both answer
    dump = json.dumps(result.manifest) + "".join(events["payload"].drop_nulls())
    assert TOKEN not in dump
