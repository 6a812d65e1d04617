"""What the planted-secret and planted-PII tests plant, and how their hostile servers run.

Shared by tests/test_planted.py (WebSocket and HTTP through the CLI) and
tests/test_planted_protocols.py (MQTT, SSE and gRPC): the secrets a scenario
references, a person without any shape a scanner could find, the PII corpus,
and every value that must never be found anywhere streambench writes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
from typing import Any

from aiohttp import web

from tests.capture.pii_corpus import POSITIVES

SECRETS = {  # environment variables the scenarios reference
    "SB_PLANT_PW": "pw-7f3e91ab",
    "SB_PLANT_QS": "qs-58c2aa17",
    "SB_PLANT_TOKEN": "tok-c41d09e2",
    "SB_PLANT_KEY": "key-a9b8c7d6",
}
ARGV_PASSWORD = "argvpw-6b2d1f"  # only ever on the command line
PERSON = {"user_id": "u-planted-4711", "name": "Zebulon Quixote", "city": "Ulaanbaatar"}
CORPUS = [value for _, value in POSITIVES]
FORBIDDEN = [*SECRETS.values(), ARGV_PASSWORD, *PERSON.values(), *CORPUS,
             base64.b64encode(f"bot:{SECRETS['SB_PLANT_PW']}".encode()).decode(),
             base64.b64encode(f"admin:{ARGV_PASSWORD}".encode()).decode()]
BODY = {**PERSON, "email": CORPUS[0], "text": " and ".join(CORPUS), "notes": {"k": CORPUS[1]}}
POLICY = {"allow": ["text", "notes"], "hash": ["user_id"]}


def compact(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def hostile_text(headers: dict[str, str] | list[tuple[str, str]]) -> str:
    """What a careless server prints: every request header and some personal data."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{name}: {value}" for name, value in pairs]
    return "\n".join([*lines, *CORPUS, SECRETS["SB_PLANT_TOKEN"]])


# -- a hostile HTTP server ----------------------------------------------------------

async def http_handler(request: web.Request, n: int) -> web.StreamResponse:
    text = await request.text()
    headers = dict(request.headers)
    doc = json.loads(text)
    page = f"<html><h1>500</h1><pre>{hostile_text(headers)}\n{text}</pre></html>"
    reason = f"Denied {headers.get('X-Api-Key')} for {CORPUS[0]}"
    responses = [
        lambda: web.Response(text=text, content_type="application/json"),
        lambda: web.Response(status=500, text=page, content_type="text/html"),
        lambda: web.json_response({"cid": doc["cid"], "error": hostile_text(headers)},
                                  dumps=compact),
        lambda: web.Response(text=hostile_text(headers)),
        lambda: web.Response(status=403, reason=reason, text=text),
        lambda: web.Response(text=text + "<!-- " + CORPUS[4] + " -->"),
        lambda: web.json_response({**doc, "cid": SECRETS["SB_PLANT_TOKEN"]}, dumps=compact),
        lambda: web.json_response({"cid": text, "text": text}, dumps=compact),
    ]
    return responses[n % len(responses)]()


async def start_hostile_http() -> web.AppRunner:
    """The hostile HTTP server (POST /echo) on a free port of 127.0.0.1: its runner."""
    app = web.Application()
    count = itertools.count(1)

    async def handle(request: web.Request) -> web.StreamResponse:
        return await http_handler(request, next(count))

    app.router.add_post("/echo", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


class serving:  # used like a function, as a context manager
    """Run an asyncio server in a thread of its own; its port while inside."""

    def __init__(self, start: Any, *, aiohttp: bool = False) -> None:
        self.start, self.aiohttp = start, aiohttp
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hostile_server")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(self._open())
        finally:
            self.ready.set()  # a server that fails to start fails the test at once
        self.loop.run_forever()

    async def _open(self) -> Any:
        opened = self.start()
        return await opened if self.aiohttp else await opened.__aenter__()

    def __enter__(self) -> int:
        self.thread.start()
        assert self.ready.wait(30)
        assert hasattr(self, "server"), "the hostile server did not start"
        if self.aiohttp:
            return int(self.server.addresses[0][1])
        return int(self.server.sockets[0].getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self.aiohttp:
                await self.server.cleanup()
            else:
                self.server.close()
                await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
