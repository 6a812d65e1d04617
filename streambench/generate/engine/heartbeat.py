"""Heartbeats: one task pings every connection of a process, each at its own phase.

``load.heartbeat: 10s`` keeps idle connections open through proxies and NAT.
One task for all connections rather than one per connection: a sleeping task
with its timer costs about a kilobyte, and 100,000 connections are held per
machine. Each connection pings at its own phase of the interval, a
golden-ratio spread of its index, so connections opened together never all
ping in the same instant and stall the event loop every interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

GOLDEN = 0.6180339887
_BATCH = 256  # pings sent back to back before the loop lets the others run
_TICK_S = 0.001  # pings due within this of each other go out together


@runtime_checkable
class Pinging(Protocol):
    """A client whose protocol has its own ping (WebSocket); MQTT has keep-alive instead."""

    conn: int

    def ping(self) -> None:
        """Ping the open connection now; nothing when it is not open."""


def phase(conn: int) -> float:
    """Where in the interval connection ``conn`` pings, in [0, 1)."""
    return (conn * GOLDEN) % 1.0


async def heartbeat_loop(clients: Sequence[Pinging], interval: float) -> None:
    """Ping every client once per ``interval`` seconds, in phase order, until cancelled."""
    order = sorted(clients, key=lambda c: phase(c.conn))
    offsets = [phase(c.conn) * interval for c in order]
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        burst = 0
        for client, offset in zip(order, offsets, strict=True):
            delay = start + offset - loop.time()
            if delay > _TICK_S:
                await asyncio.sleep(delay)
                burst = 0
            client.ping()
            burst += 1
            if burst >= _BATCH:
                await asyncio.sleep(0)
                burst = 0
        start += interval
        await asyncio.sleep(max(0.0, start - loop.time()))
