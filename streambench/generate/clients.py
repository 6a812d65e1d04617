"""The protocol clients, and the shape the run engine expects of each.

A client class is constructed per connection as ``Client(ctx, conn)`` and
provides :class:`Connection`. The engine calls ``open()`` for every
connection first (a failure there ends the run with a clear error), then
runs ``run(handle)`` and ``send_all()`` side by side until both return.

========== ================================================ =====================
protocol   client                                           ``target.url``
========== ================================================ =====================
websocket  :class:`~streambench.generate.websocket.WebSocketConnection`  ws://, wss://
mqtt       :class:`~streambench.generate.mqtt.MqttConnection`            mqtt://, mqtts://
http       :class:`~streambench.generate.http.HttpConnection`            http://, https://
sse        :class:`~streambench.generate.sse.SseConnection`              http://, https://
========== ================================================ =====================

``fallback: http`` on a WebSocket target: when the upgrade is refused
(:class:`~streambench.errors.TargetError`, not an unreachable host), the run
goes on over plain HTTP against the URL's ``http(s)://`` twin.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.context import Inflight, RunContext

if TYPE_CHECKING:
    from streambench.generate.inject import FaultInjector
    from streambench.scenario.model import Scenario


class Connection(Protocol):
    conn: int
    name: str  # task name prefix, e.g. "websocket[3]"
    topic: str  # ws path, mqtt topic or http path, as recorded in events
    inflight: Inflight
    faults: FaultInjector | None  # set by the engine when the scenario has faults

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
    if protocol == "mqtt":
        from streambench.generate.mqtt import MqttConnection

        return MqttConnection
    if protocol == "http":
        from streambench.generate.http import HttpConnection

        return HttpConnection
    if protocol == "sse":
        from streambench.generate.sse import SseConnection

        return SseConnection
    raise ConfigError(f"target.protocol: no client for {protocol!r}")


def http_twin(url: str) -> str:
    """``ws://h/p`` -> ``http://h/p``, ``wss://`` -> ``https://`` (the fallback's URL)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def embedded_url(scenario: Scenario, *, ws_url: str, http_url: str) -> str:
    """The URL a scenario with ``url: embedded`` drives, from the started target's URLs.

    WebSocket: ``ws://.../echo``; HTTP: ``http://.../echo``; SSE: the target's
    ``/sse`` stream pushing ``load.rate / load.connections`` events/s per stream.
    MQTT has no embedded broker.
    """
    protocol = scenario.target.protocol
    if protocol == "websocket":
        return ws_url
    if protocol == "http":
        return http_url + "echo"
    if protocol == "sse":
        load = scenario.load
        peak = max(max(s.rate, s.to or 0.0) for s in load.profile())
        interval_ms = 1000.0 * load.connections / peak if peak > 0 else 1000.0
        return f"{http_url}sse?count=100000&interval={interval_ms:.3f}ms"
    raise ConfigError(f"target.url: embedded is a WebSocket/HTTP target; a {protocol} "
                      "scenario needs a URL such as mqtt://127.0.0.1:1883")


def os_reason(exc: OSError) -> str:
    """``Connection refused`` rather than ``Connect call failed ('127.0.0.1', 1)``."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


OpenAll = Callable[[list[Any]], Awaitable[list[Any]]]


async def open_clients(ctx: RunContext, *, open_all: OpenAll, writer: Any = None
                       ) -> tuple[list[Any], list[Any]]:
    """Build and open one client per connection; ``(clients, handles)``.

    With ``target.fallback: http`` a refused WebSocket upgrade switches the
    run to HTTP: ``ctx.url`` becomes the twin URL, ``writer.protocol`` becomes
    ``"http"`` and an ``error`` row with status ``fallback`` says why.
    """
    protocol = ctx.scenario.target.protocol
    clients = [client_for(protocol)(ctx, c) for c in range(ctx.connections)]
    try:
        return clients, await open_all(clients)
    except TargetUnreachable:
        raise
    except TargetError as exc:
        if protocol != "websocket" or ctx.scenario.target.fallback != "http":
            raise
        reason = str(exc)
    ctx.url = http_twin(ctx.url)
    if writer is not None:
        writer.protocol = "http"
    clients = [client_for("http")(ctx, c) for c in range(ctx.connections)]
    handles = await open_all(clients)
    from streambench.generate.http import record_fallback

    record_fallback(clients, reason)
    return clients, handles
