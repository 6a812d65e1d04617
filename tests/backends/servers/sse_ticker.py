"""A ticker over server-sent events with sse-starlette, as its README writes one.

``GET /ticks`` streams ``{"seq": n, "ts": "<ISO 8601 UTC>", "price": ...}``
events (``event: tick``, ``id: n``) every ``--interval`` seconds, numbered from
1 on each stream. ``--skip-every K`` never sends the numbers divisible by K (a
server that loses messages, on purpose).

    python -m tests.backends.servers.sse_ticker --port 8002
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator

import uvicorn
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route


def make_app(*, interval: float, skip_every: int | None) -> Starlette:
    async def ticks(request: Request) -> EventSourceResponse:
        async def generate_events() -> AsyncIterator[dict[str, str]]:
            seq = 0
            while True:
                seq += 1
                if skip_every and seq % skip_every == 0:
                    continue
                now = dt.datetime.now(dt.UTC).isoformat()
                data = {"seq": seq, "ts": now, "price": 100 + seq % 7}
                yield {"event": "tick", "id": str(seq), "data": json.dumps(data)}
                await asyncio.sleep(interval)

        return EventSourceResponse(generate_events())

    return Starlette(routes=[Route("/ticks", ticks)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--skip-every", type=int, default=None)
    args = parser.parse_args()
    app = make_app(interval=args.interval, skip_every=args.skip_every)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
