"""A JSON-RPC 2.0 server (jsonrpcserver) over WebSockets, as its docs show it.

``echo(text)`` answers with the text; ``log(line)`` is a notification (no
answer); any other method is a JSON-RPC error.

    python -m tests.backends.servers.jsonrpc_ws --port 5000
"""

from __future__ import annotations

import argparse
import asyncio

from jsonrpcserver import Result, Success, async_dispatch, method
from websockets.asyncio.server import ServerConnection, serve


@method
async def echo(text: str) -> Result:
    return Success(text)


@method
async def log(line: str) -> Result:
    return Success(None)


async def handle(websocket: ServerConnection) -> None:
    async for message in websocket:
        response = await async_dispatch(str(message))
        if response:
            await websocket.send(response)


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
