"""A FastAPI WebSocket endpoint with its own acknowledgement envelope.

Each request ``{"id": ..., "op": ..., "text": ...}`` is acknowledged with
``{"ok": true, "reply_to": <id>, "item": {"id": <its own id>, ...}, "error": null}``;
every tenth message also triggers a server push ``{"type": "notice", ...}``.

    python -m tests.backends.servers.fastapi_ack --port 8000
"""

from __future__ import annotations

import argparse
import itertools

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
items = itertools.count(1)


@app.websocket("/ws")
async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            request = await websocket.receive_json()
            item = next(items)
            await websocket.send_json({"ok": True, "reply_to": request["id"],
                                       "item": {"id": item, "text": request["text"]},
                                       "error": None})
            if item % 10 == 0:
                await websocket.send_json({"type": "notice", "items": item})
    except WebSocketDisconnect:
        return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")


if __name__ == "__main__":
    main()
