"""A python-socketio server (ASGI, under uvicorn), as its docs write one.

The ``chat`` event is acknowledged with ``{"ok": true, "echo": <data>}`` (the
handler's return value is the ack); every fifth message is also broadcast to
the sender as a ``news`` event (a server push).

    python -m tests.backends.servers.socketio_server --port 5001
"""

from __future__ import annotations

import argparse
import itertools

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi")
app = socketio.ASGIApp(sio)
counter = itertools.count(1)


@sio.event
async def chat(sid: str, data: dict[str, object]) -> dict[str, object]:
    if next(counter) % 5 == 0:
        await sio.emit("news", {"headline": "five more"}, to=sid)
    return {"ok": True, "echo": data}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")


if __name__ == "__main__":
    main()
