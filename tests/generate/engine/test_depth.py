"""Replies nested 255 to 5,000 levels deep, wherever they nest: rows, never a crash.

Issue 16 item 5: JSON nested 255-1,024 deep inside an allowed field raised
RecursionError in redaction, the TaskGroup died and one event survived; an
``error`` field nested 255+ deep broke the reply classifier (orjson will not
write it back, ``repr`` recurses).
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from websockets.asyncio.server import ServerConnection, serve

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.generate.engine.correlate import NOT_JSON, parse
from tests.helpers import scenario

DEPTHS = (255, 600, 1023, 1024, 5000)


def nested(depth: int, n: int) -> str:
    return "[" * depth + "]" * depth if n % 2 else '{"a":' * depth + "1" + "}" * depth


def deep_reply(message: str, n: int) -> str:
    """The request with one field replaced by a deep document, in turn."""
    doc = json.loads(message)
    depth = DEPTHS[n % len(DEPTHS)]
    field = ("text", "error", "cid", "value")[n % 4]
    head = json.dumps({k: v for k, v in doc.items() if k != field})[:-1]
    return f'{head}, "{field}": {nested(depth, n)}}}'


@pytest.mark.parametrize("depth", DEPTHS)
def test_the_reply_classifier_reads_a_deep_reply_as_not_json(depth: int):
    for n in (0, 1):
        assert parse(f'{{"cid": "0-1", "error": {nested(depth, n)}}}') is NOT_JSON
    assert parse('{"a": [{"b": [1, 2]}, {"c": {"d": null}}]}') == \
        {"a": [{"b": [1, 2]}, {"c": {"d": None}}]}


async def test_a_server_that_nests_every_reply_deeply(store: Store):
    count = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal count
        async for message in ws:
            count += 1
            await ws.send(deep_reply(str(message), count))

    server = await serve(handler, "127.0.0.1", 0, max_size=None, compression=None)
    port = server.sockets[0].getsockname()[1]
    async with server:
        sc = scenario(target={"url": f"ws://127.0.0.1:{port}/echo"},
                      load={"connections": 1, "rate": 40, "duration": "0.5s",
                            "timeout": "300ms"})
        result = await run_async(sc, store=store)
    assert result.status == "completed"
    events = store.events(result.run_id).collect()
    replies = events.filter(pl.col("kind").is_in(["recv", "error", "timeout"]))
    assert replies.height >= 20  # every message is accounted for: nothing was lost
    # one connection, closed by the client at the end: a crashed receive path drops it
    # (1006) and the messages after are "not_connected"
    assert events.filter(pl.col("kind") == "disconnect")["status"].to_list() == ["1000"]
    assert "not_connected" not in events["status"].to_list()
    payloads = events.filter(pl.col("kind") != "send")["payload"].drop_nulls()
    assert len(payloads) >= 5  # replies that came in before their timeout
    assert payloads.str.starts_with("<deep-json:").all()  # kept as kind and length only
    assert result.manifest["redaction"]["deep_json"] == len(payloads)
