"""The protocol clients, and the shape the run engine expects of each.

A client class is constructed per connection as ``Client(ctx, conn)`` and
provides :class:`Connection`. The engine calls ``open()`` for every
connection first (a failure there ends the run with a clear error), then
runs ``run(handle)`` and ``send_all()`` side by side until both return. A
client that receives in callbacks (WebSocket) also has ``adopt(handle)``,
which the engine calls instead of running ``run`` as a task.

========== ================================================ =====================
protocol   client                                           ``target.url``
========== ================================================ =====================
websocket  :class:`~streambench.generate.protocols.websocket.client.WebSocketConnection`  ws://, wss://
mqtt       :class:`~streambench.generate.protocols.mqtt.client.MqttConnection`            mqtt://, mqtts://
http       :class:`~streambench.generate.protocols.http.client.HttpConnection`            http://, https://
sse        :class:`~streambench.generate.protocols.sse.SseConnection`              http://, https://
grpc       :class:`~streambench.generate.protocols.grpc.client.GrpcConnection`       grpc://, grpcs://
========== ================================================ =====================

``fallback: http`` on a WebSocket target: when the upgrade is refused
(:class:`~streambench.errors.TargetError`, not an unreachable host), the run
goes on over plain HTTP against the URL's ``http(s)://`` twin.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from streambench.capture.schema import Kind
from streambench.errors import ConfigError, ResourceLimit, TargetError, TargetUnreachable
from streambench.generate.engine.context import Flag, Inflight, RunContext, backoff
from streambench.logs import get_logger
from streambench.scenario.model import (
    HttpTarget,
    MqttTarget,
    Reconnect,
    SseTarget,
    WebSocketTarget,
)

if TYPE_CHECKING:
    from streambench.generate.faults.inject import FaultInjector
    from streambench.scenario.model import Scenario

log = get_logger("streambench.connection")
Handle = TypeVar("Handle")
OpenedHandle_co = TypeVar("OpenedHandle_co", covariant=True)  # what Reopening.open() returns
AnyTarget = TypeVar("AnyTarget", WebSocketTarget, MqttTarget, HttpTarget, SseTarget)


class Connection(Protocol):
    """What the engine drives: one per connection, built as ``Client(ctx, conn)``.

    Call order: ``open()`` once (a failure there is the run's answer: the
    target is unreachable or refuses), then ``run(handle)`` (or, where the
    client has it, the synchronous ``adopt(handle)``) and ``send_all()`` side
    by side until both return. The last three methods are the fault
    injector's seam (:class:`streambench.generate.faults.inject.Faultable`).
    """

    conn: int
    topic: str  # ws path, mqtt topic or http path, as recorded in events
    inflight: Inflight
    faults: FaultInjector | None  # set by the engine when the scenario has faults

    @property
    def name(self) -> str:
        """Task name prefix, e.g. ``websocket[3]``."""

    async def open(self) -> Any:
        """Connect once; raise TargetUnreachable/TargetError/ConfigError on failure."""

    async def run(self, handle: Any) -> None:
        """Receive on ``handle``; reconnect with backoff until the run is done."""

    async def send_all(self) -> None:
        """Send every scheduled message at its intended time (open model)."""

    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        """Send one message now and record it, as the send loop does."""

    async def send_copy(self, data: bytes) -> None:
        """Send extra bytes (a duplicate) without recording a send."""

    def abort(self) -> None:
        """Drop the connection abruptly (a disconnect fault)."""


class Reopening(Protocol[OpenedHandle_co]):
    """A persistent-connection client that :func:`reconnect` can open again."""

    ctx: RunContext
    conn: int
    inflight: Inflight
    faults: FaultInjector | None

    @property
    def sending_done(self) -> Flag | asyncio.Event:
        """Set once the schedule is over (read-only here: each client has its own kind)."""

    async def open(self) -> OpenedHandle_co: ...

    def record_event(self, kind: Kind, *, status: str | None = None,
                     error: str | None = None) -> None: ...


class Reconnecting(Reopening[Handle], Protocol[Handle]):
    """A persistent-connection client that :func:`serve_reconnecting` keeps alive."""

    async def serve(self, handle: Handle) -> None:
        """Serve one open connection; return when it is gone."""


class EventRecorder:
    """``record_event`` for clients: a connection-level row (connect, disconnect, error)."""

    __slots__ = ()

    ctx: RunContext
    conn: int
    topic: str

    def record_event(self, kind: Kind, *, status: str | None = None,
                     error: str | None = None) -> None:
        self.ctx.record((kind, time.monotonic_ns(), self.conn, None, None, None, None, None,
                         self.topic, status, error, None))


def target_as(ctx: RunContext, kind: type[AnyTarget]) -> AnyTarget:
    """The run's target as the model a client expects (``WebSocketTarget`` for WebSocket)."""
    target = ctx.scenario.target
    if not isinstance(target, kind):
        raise ConfigError(f"target.protocol: a {target.protocol} target given to the "
                          f"{kind.__name__} client")
    return target


ClientFactory = Callable[[RunContext, int], Connection]


def client_for(protocol: str) -> ClientFactory:
    """The client class for a scenario's ``target.protocol``."""
    if protocol == "websocket":
        from streambench.generate.protocols.websocket.client import WebSocketConnection

        return WebSocketConnection
    if protocol == "mqtt":
        from streambench.generate.protocols.mqtt.client import MqttConnection

        return MqttConnection
    if protocol == "http":
        from streambench.generate.protocols.http.client import HttpConnection

        return HttpConnection
    if protocol == "sse":
        from streambench.generate.protocols.sse import SseConnection

        return SseConnection
    if protocol == "grpc":
        from streambench.generate.protocols.grpc.client import GrpcConnection

        return GrpcConnection
    raise ConfigError(f"target.protocol: no client for {protocol!r}")


def http_twin(url: str) -> str:
    """``ws://h/p`` -> ``http://h/p``, ``wss://`` -> ``https://`` (the fallback's URL)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def embedded_url(scenario: Scenario, *, ws_url: str, http_url: str, grpc_url: str = "") -> str:
    """The URL a scenario with ``url: embedded`` drives, from the started target's URLs.

    WebSocket: ``ws://.../echo`` (a fan-out scenario: ``ws://.../broadcast/<group>``,
    the group's ``{{placeholders}}`` filled per connection); HTTP: ``http://.../echo``;
    SSE: the target's ``/sse`` stream pushing ``load.rate / load.connections`` events/s per stream;
    gRPC: the gRPC echo service (``grpc://...``). MQTT has no embedded broker.
    """
    protocol = scenario.target.protocol
    if protocol == "websocket" and scenario.fans_out:  # the target's broadcast rooms
        group = scenario.fanout.group if scenario.fanout and scenario.fanout.group else "all"
        return f"{ws_url.rsplit('/', 1)[0]}/broadcast/{group}"
    if protocol == "websocket":
        return ws_url
    if protocol == "grpc":
        return grpc_url
    if protocol == "http":
        return http_url + "echo"
    if protocol == "sse":
        load = scenario.load
        peak = max(max(s.rate, s.to or 0.0) for s in load.profile())
        interval_ms = 1000.0 * load.connections / peak if peak > 0 else 1000.0
        return f"{http_url}sse?count=100000&interval={interval_ms:.3f}ms"
    raise ConfigError(f"target.url: embedded is a WebSocket/HTTP/gRPC target; a {protocol} "
                      "scenario needs a URL such as mqtt://127.0.0.1:1883")


def host_port(url: str) -> str:
    """``ws://h:8765/echo`` -> ``h:8765`` (the default port of the scheme when none is given)."""
    parts = urlsplit(url)
    default = {"ws": 80, "http": 80, "wss": 443, "https": 443, "mqtt": 1883, "mqtts": 8883}
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname}:{port or default.get(parts.scheme, 0)}"


def dial_address(ctx: RunContext, host: str, port: int) -> tuple[str, int]:
    """Where a client opens its TCP connections: the fault proxy when the run goes
    through one (``ctx.dial``), else the URL's ``host:port``."""
    return ctx.dial if ctx.dial is not None else (host, port)


@dataclass(frozen=True)
class Dialled:
    """A URL as an aiohttp client requests it through the fault proxy."""

    url: str  # the proxy's address in place of the target's
    headers: dict[str, str]  # Host: the target, as if dialled directly
    server_hostname: str | None  # the TLS server name (None: the URL's host)


def dialled(url: str, dial: tuple[str, int] | None) -> Dialled:
    """``url`` with its address replaced by ``dial`` (no change when ``dial`` is None)."""
    if dial is None:
        return Dialled(url, {}, None)
    parts = urlsplit(url)
    host = f"[{dial[0]}]" if ":" in dial[0] else dial[0]
    userinfo, at, netloc = parts.netloc.rpartition("@")
    proxied = urlunsplit((parts.scheme, f"{userinfo}{at}{host}:{dial[1]}", parts.path,
                          parts.query, parts.fragment))
    secure = parts.scheme in ("https", "wss")
    return Dialled(proxied, {"Host": netloc}, parts.hostname if secure else None)


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
    target = ctx.scenario.target
    clients = [client_for(target.protocol)(ctx, c) for c in range(ctx.connections)]
    try:
        return clients, await open_all(clients)
    except TargetUnreachable:
        raise
    except TargetError as exc:
        if not isinstance(target, WebSocketTarget) or target.fallback != "http":
            raise
        reason = str(exc)
    # the run goes on as an HTTP scenario: default method and engine, same headers
    http = HttpTarget(protocol="http", url=http_twin(target.url), headers=target.headers,
                      connect_timeout=target.connect_timeout)
    ctx.scenario = ctx.scenario.model_copy(update={"target": http})
    ctx.url = http_twin(ctx.url)
    if writer is not None:
        writer.protocol = "http"
    clients = [client_for("http")(ctx, c) for c in range(ctx.connections)]
    handles = await open_all(clients)
    from streambench.generate.protocols.http.client import record_fallback

    record_fallback(clients, reason)
    return clients, handles


async def serve_reconnecting(client: Reconnecting[Handle], handle: Handle) -> None:
    """Serve an open connection; when it is lost, reconnect with backoff and serve again.

    Shared by the persistent-connection clients (WebSocket, MQTT). Ends when
    the run stops, or once the schedule is done and nothing is in flight, or
    when ``target.reconnect.attempts`` failed attempts in a row are used up.
    Failed attempts are recorded as ``connect_failed`` errors, never raised:
    the first connection is opened by the engine, where failing is an answer.
    """
    settings = reconnect_settings(client.ctx)
    delays = backoff(settings.initial, settings.max, settings.factor)
    while True:
        opened = time.monotonic()
        await client.serve(handle)
        if done_serving(client):
            return
        # A server that accepts and closes at once must not be hammered: the backoff
        # starts over only after a connection that stayed up a while.
        if time.monotonic() - opened >= healthy_uptime(settings.max):
            delays = backoff(settings.initial, settings.max, settings.factor)
        again = await reconnect(client, delays)
        if again is None:
            return
        handle = again


def reconnect_settings(ctx: RunContext) -> Reconnect:
    """The target's ``reconnect``; a protocol without one connects once."""
    settings = getattr(ctx.scenario.target, "reconnect", None)
    return settings if isinstance(settings, Reconnect) else Reconnect(attempts=0)


def done_serving(client: Reopening[Handle]) -> bool:
    """The run stopped, or the schedule is done and nothing is in flight (no reply, no
    fan-out copy still on its way to a member): no reconnect."""
    ctx = client.ctx
    return ctx.stop.is_set() or (client.sending_done.is_set() and not client.inflight.pending
                                 and ctx.drained)


async def reconnect(client: Reopening[Handle], delays: Iterator[float]) -> Handle | None:
    """Open a lost connection again, waiting ``delays`` between attempts (the backoff);
    None once it is no longer wanted or ``reconnect.attempts`` failed in a row."""
    settings = reconnect_settings(client.ctx)
    if client.faults is not None:
        await client.faults.hold_down(client.conn)
    attempts = 0
    while True:
        await asyncio.sleep(next(delays))
        try:
            return await client.open()
        except (TargetError, ConfigError, ResourceLimit) as exc:
            client.record_event(Kind.ERROR, status="connect_failed", error=str(exc))
            log.info("reconnect failed: %s", exc, extra={"conn": client.conn})
            attempts += 1
            if settings.attempts is not None and attempts >= settings.attempts:
                return None
        if done_serving(client):
            return None


def healthy_uptime(maximum: float) -> float:
    """How long a connection must stay up for the reconnect backoff to start over."""
    return min(1.0, maximum)
