"""The webhook notifier against a real aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from streambench.analyze import Notifier
from streambench.analyze.notify import post_anomalies, render_body
from streambench.analyze.types import Anomaly
from tests.analyze.helpers import T0_NS, S

ANOMALY = Anomaly(
    rule="reply-stall",
    kind="stall",
    severity="critical",
    start=T0_NS,
    end=T0_NS + 3 * S,
    fingerprint="reply-stall:chat",
    evidence={"pending": 7},
)


class Receiver:
    """Answers ``fail_first`` requests with 503, then 200; records what it accepted."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.accepted: list[dict] = []
        self.got_one = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.requests <= self.fail_first:
            return web.Response(status=503)
        self.accepted.append(await request.json())
        self.got_one.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    handler = Receiver(fail_first=2)
    app = web.Application()
    app.router.add_post("/hook", handler.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield handler, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


def quick() -> list[float]:
    return iter([0.01] * 10)  # type: ignore[return-value]


async def test_retries_with_backoff_until_delivered(receiver) -> None:
    handler, url = receiver
    async with Notifier(url, retries=3, backoff=quick) as notifier:
        assert notifier.notify([ANOMALY], run_id="r1") is True
        await asyncio.wait_for(handler.got_one.wait(), 5)
    assert handler.requests == 3
    assert notifier.stats["retries"] == 2
    assert notifier.stats["sent"] == 1
    assert notifier.stats["failed"] == 0
    (body,) = handler.accepted
    assert body["run_id"] == "r1"
    assert body["anomalies"][0]["rule"] == "reply-stall"


async def test_a_dead_webhook_never_blocks_or_raises() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    notifier = Notifier(f"http://127.0.0.1:{port}/hook", retries=2, backoff=quick, timeout=1)
    notifier.start()
    assert notifier.notify(ANOMALY) is True  # returns at once
    await notifier.aclose(grace=5)
    assert notifier.stats == {"sent": 0, "failed": 1, "dropped": 0, "retries": 2}


async def test_a_full_queue_drops_instead_of_blocking() -> None:
    notifier = Notifier("http://127.0.0.1:9/none", queue_size=1)
    assert notifier.notify(ANOMALY) is True
    assert notifier.notify(ANOMALY) is False
    assert notifier.stats["dropped"] == 1


def test_slack_and_teams_bodies() -> None:
    slack = render_body([ANOMALY], style="slack", run_id="r1", final=True)
    assert slack["text"] == "streambench: 1 anomaly in run r1 (run finished)"
    assert "reply-stall" in slack["blocks"][1]["text"]["text"]
    teams = render_body([ANOMALY], style="teams", run_id=None, final=False)
    assert teams["@type"] == "MessageCard"
    assert teams["themeColor"] == "8B0000"
    assert teams["sections"][0]["facts"][0]["name"] == "reply-stall"


def test_post_anomalies_is_bounded_and_quiet() -> None:
    stats = post_anomalies("http://127.0.0.1:9/none", [ANOMALY], timeout=1)
    assert stats["failed"] + stats["dropped"] == 1
