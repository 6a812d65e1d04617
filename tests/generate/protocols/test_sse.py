"""Server-sent events: the event-stream parser without sockets, and hostile streams."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import polars as pl
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.generate.protocols.sse import EventStreamParser, EventTooBig
from tests.helpers import scenario

STREAM = (b"id: 1\r\ndata: a\r\ndata: b\r\n\r\n: keep-alive\n\n"
          b"event: tick\ndata: c\r\rdata: d\n\nid: 2\ndata\n\n")
EVENTS = [("a\nb", "1", None), ("c", "1", "tick"), ("d", "1", None), ("", "2", None)]


def test_the_parser_follows_the_event_stream_rules() -> None:
    assert EventStreamParser(max_bytes=1024).feed(STREAM) == EVENTS


@given(st.lists(st.integers(0, len(STREAM)), max_size=6))
def test_any_split_into_chunks_gives_the_same_events(cuts: list[int]) -> None:
    parser = EventStreamParser(max_bytes=1024)
    bounds = [0, *sorted(cuts), len(STREAM)]
    events = [e for a, b in itertools.pairwise(bounds) for e in parser.feed(STREAM[a:b])]
    assert events == EVENTS


def test_a_line_or_an_event_over_the_limit_is_refused_before_it_is_buffered() -> None:
    with pytest.raises(EventTooBig, match="larger than 100 bytes"):
        EventStreamParser(max_bytes=100).feed(b"data: " + b"x" * 200)  # no end of line yet
    parser = EventStreamParser(max_bytes=100)
    lines = b"data: " + b"y" * 10 + b"\n"  # data lines that never end in a blank line
    assert parser.feed(lines * 6) == []
    with pytest.raises(EventTooBig):
        parser.feed(lines * 6)


@pytest.fixture
async def hostile_stream() -> AsyncIterator[str]:
    """An SSE endpoint that sends one good event, then a 2 MiB line with no end."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: fine\n\n")
        with contextlib.suppress(ConnectionResetError):  # the client hangs up: expected
            for _ in range(32):
                await response.write(b"data: " + b"z" * 65536)
                await asyncio.sleep(0)
        return response

    app = web.Application()
    app.router.add_get("/events", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/events"
    await runner.cleanup()


async def test_an_endless_line_is_a_too_big_row_not_a_crash(store: Store, hostile_stream: str):
    sc = scenario(target={"protocol": "sse", "url": hostile_stream, "max_message_bytes": 65536,
                          "reconnect": {"attempts": 1}},
                  load={"connections": 1, "rate": 1, "duration": "1s"})
    result = await run_async(sc, store=store)
    assert result.status == "completed"
    events = store.events(result.run_id).collect()
    too_big = events.filter(pl.col("status") == "too_big")
    assert too_big.height >= 1
    assert too_big["error"].to_list()[0] == "event larger than 65536 bytes"
    assert events.filter(pl.col("kind") == "push")["bytes"].to_list()[0] == len("fine")
