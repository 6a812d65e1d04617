"""A WebSocket chat echo written as aiohttp's tutorial writes one (``ws.send_json``).

Python's ``json.dumps`` puts a space after every ``:`` and ``,``; the reply is
the server's own object, not the request. A welcome frame greets each
connection.

    python -m tests.backends.servers.aiohttp_json --port 8080
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web


async def chat(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"type": "welcome", "server": "aiohttp"})
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            data = msg.json()
            await ws.send_json({"type": "said", "text": data["text"], "cid": data["cid"],
                                "seq": data["seq"]})
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    app = web.Application()
    app.add_routes([web.get("/chat", chat)])
    web.run_app(app, host="127.0.0.1", port=parser.parse_args().port, print=None)


if __name__ == "__main__":
    main()
