"""Run in a network namespace of its own whose ephemeral port range is 8 ports wide.

    unshare -rn python -m tests.generate.protocols.websocket.narrow_ports

(``-r``: a user namespace mapped to root, so no privilege is needed; ``-n``: a
fresh network namespace, whose loopback is down and whose
``net.ipv4.ip_local_port_range`` is its own, so narrowing it touches nothing
else on the machine.) It brings ``lo`` up, narrows the range to
:data:`PORTS`, starts an echo server on 127.0.0.1:8765 and runs two
scenarios against it: 3 connections per port of the range spread over three
source addresses, and the same count from the default address. It prints
one JSON object: the run's status and counts, the 4-tuples the server saw,
and the first run's error, if any (used by test_source_addresses.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import StreambenchError
from tests.helpers import scenario

PORTS = (40000, 40007)  # 8 ports: every address can reach one host:port at most 8 times
SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
SERVER_PORT = 8765  # outside the range: the listener takes none of its ports
CONNECTIONS = 18  # > 8: more than one address's worth, 6 per address


def narrow() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    Path("/proc/sys/net/ipv4/ip_local_port_range").write_text(f"{PORTS[0]} {PORTS[1]}\n")


async def run(sources: list[str], store: Store) -> dict[str, Any]:
    peers: set[tuple[str, int]] = set()

    async def echo(ws: ServerConnection) -> None:
        peers.add(ws.remote_address[:2])
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", SERVER_PORT, compression=None):
        target: dict[str, Any] = {"url": f"ws://127.0.0.1:{SERVER_PORT}/echo"}
        if sources:
            target["source_addresses"] = sources
        sc = scenario(target=target,
                      load={"connections": CONNECTIONS, "rate": 2 * CONNECTIONS,
                            "duration": "1s"})
        try:
            result = await run_async(sc, store=store)
        except StreambenchError as exc:
            return {"error": str(exc), "peers": sorted(peers)}
    return {"status": result.status, "sent": result.summary["sent"],
            "received": result.summary["received"], "peers": sorted(peers)}


async def main() -> None:
    narrow()
    with tempfile.TemporaryDirectory() as tmp:
        spread = await run(SOURCES, Store(Path(tmp) / "a"))
        one = await run([], Store(Path(tmp) / "b"))
    print(json.dumps({"ports": PORTS, "spread": spread, "one_address": one}))


if __name__ == "__main__":
    asyncio.run(main())
