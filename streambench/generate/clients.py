"""The protocol clients, and the shape the run engine expects of each.

A client class is constructed per connection as ``Client(ctx, conn)`` and
provides :class:`Connection`. The engine calls ``open()`` for every
connection first (a failure there ends the run with a clear error), then
runs ``run(handle)`` and ``send_all()`` side by side until both return.
"""

from __future__ import annotations

from typing import Any, Protocol

from streambench.errors import ConfigError
from streambench.generate.context import Inflight, RunContext


class Connection(Protocol):
    conn: int
    name: str  # task name prefix, e.g. "websocket[3]"
    topic: str  # ws path, mqtt topic or http path, as recorded in events
    inflight: Inflight

    def __init__(self, ctx: RunContext, conn: int) -> None: ...

    async def open(self) -> Any:
        """Connect once; raise TargetUnreachable/TargetError/ConfigError on failure."""

    async def run(self, handle: Any) -> None:
        """Receive on ``handle``; reconnect with backoff until the run is done."""

    async def send_all(self) -> None:
        """Send every scheduled message at its intended time (open model)."""


def client_for(protocol: str) -> type[Connection]:
    """The client class for a scenario's ``target.protocol``."""
    if protocol == "websocket":
        from streambench.generate.websocket import WebSocketConnection

        return WebSocketConnection
    raise ConfigError(f"target.protocol: no client for {protocol!r} yet")
