"""The MQTT client: one client id per connection, open-model publishers.

Per connection, as for WebSocket, a *sender* publishes each message to
``target.publish`` at its intended time whatever came back, and the
*connection* task keeps a session open (reconnecting with backoff) while
replies arrive on ``target.subscribe``. Latency is matched by correlation id
from the intended publish time to the receipt on the subscription: when both
topics are the same, the broker's fan-out is the echo.

The session engine is :class:`~.mqtt_wire.WireSession` (a lean codec, the
default for ``mqtt://``/``mqtts://``) or :class:`~.mqtt_aiomqtt.AiomqttSession`
(MQTT over WebSockets, or ``target.mqtt_engine: aiomqtt``). A lost connection
is a ``disconnect`` row; with a clean session what was in flight is resolved
as ``disconnected`` errors, with a persistent one (``clean_session: false``) it
stays in flight (the broker may still deliver it) until it arrives or times
out. Failed reconnects are ``connect_failed`` error rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from streambench.capture.schema import NOTIFY_CODE, SEND_CODE, Kind
from streambench.errors import ConfigError
from streambench.generate.engine.clock import sleep_until
from streambench.generate.engine.context import Inflight, RunContext
from streambench.generate.engine.replies import ReplyMatcher
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.protocols.base import EventRecorder, serve_reconnecting
from streambench.generate.protocols.mqtt.session import MqttSession
from streambench.generate.protocols.mqtt.settings import MqttSettings, mqtt_settings
from streambench.scenario.model import MqttTarget

_YIELD_EVERY = 64  # a sender behind schedule still lets the receiver run


def session_class(settings: MqttSettings, engine: str) -> type[MqttSession]:
    """The engine for these settings (``auto``: wire unless MQTT runs over WebSockets)."""
    if engine == "aiomqtt" or (engine == "auto" and settings.scheme in ("ws", "wss")):
        from streambench.generate.protocols.mqtt.aiomqtt_engine import AiomqttSession

        return AiomqttSession
    if settings.scheme in ("ws", "wss"):
        raise ConfigError("target.mqtt_engine: wire speaks MQTT over TCP only; use aiomqtt "
                          "(or auto) for a ws:// URL")
    from streambench.generate.protocols.mqtt.wire import WireSession

    return WireSession


class MqttConnection(EventRecorder):
    """One MQTT connection: its publisher, its session and what is in flight on it."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        target = ctx.scenario.target
        if not isinstance(target, MqttTarget):
            raise ConfigError(f"target.protocol: {target.protocol} is not mqtt")
        self.framer = ctx.conversation.framer(ctx.conn_offset + conn)
        self.settings = mqtt_settings(target, url=ctx.url, conn=ctx.conn_offset + conn,
                                      heartbeat=ctx.scenario.load.heartbeat,
                                      headers=ctx.headers, variables=self.framer.values,
                                      dial=ctx.dial)
        self.name = f"mqtt[{conn}]"
        self.topic = self.settings.publish_topic
        self.inflight = Inflight(conn, ctx.record)
        self.matcher = ReplyMatcher(ctx, self.inflight, conn=conn,
                                    topic=self.settings.subscribe_topic)
        if ctx.fanout is not None:  # a member of every topic its subscription matches
            ctx.fanout.join(conn, self.settings.subscribe_topic)
        self.session: MqttSession | None = None
        self.connected = asyncio.Event()
        self.sending_done = asyncio.Event()
        self.faults: FaultInjector | None = None
        self._session_class = session_class(self.settings, target.mqtt_engine)

    # -- connecting ------------------------------------------------------------
    async def open(self) -> MqttSession:
        session = self._session_class(self.settings, on_message=self.on_message)
        await session.connect()
        return session

    async def run(self, session: MqttSession) -> None:
        """Keep a session open until the schedule is done and every reply is in."""
        await serve_reconnecting(self, session)

    async def serve(self, session: MqttSession) -> None:
        self.session = session
        self.record_event(Kind.CONNECT,
                          status="session_present" if session.session_present else "open")
        self.connected.set()
        closer = asyncio.create_task(self._close_when_done(session), name=f"{self.name}.drain")
        try:
            reason = await asyncio.shield(session.closed)
        finally:
            closer.cancel()
            if not session.closed.done():  # cancelled (the run was stopped): drop it now
                session.abort()
            self.session = None
            self.connected.clear()
        self.record_event(Kind.DISCONNECT, error=reason)
        if self.settings.clean or self.ctx.stop.is_set():
            self.inflight.fail_all(time.monotonic_ns(), "disconnected", reason, self.topic)

    async def _close_when_done(self, session: MqttSession) -> None:
        await self.sending_done.wait()
        # Polled: signalling "empty" from the reply path would cost every reply.
        while self.inflight.pending and not self.ctx.stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if self.ctx.fanout is not None:  # members stay until the last broadcast has drained
            await self.ctx.fanout.wait_drained(self.ctx.stop)
        await session.close()

    # -- receiving -------------------------------------------------------------
    def on_message(self, payload: bytes, now: int, correlation: bytes | None = None) -> None:
        cid = None if correlation is None else correlation.decode("utf-8", "replace")
        self.matcher.on_reply(payload.decode("utf-8", "replace"), now, cid=cid)

    # -- sending ---------------------------------------------------------------
    async def send_all(self) -> None:
        """Publish every scheduled message at its intended time (open model)."""
        ctx = self.ctx
        record, pending, message = ctx.record, self.inflight.pending, self.framer.message
        conn, topic, start = self.conn, self.topic, ctx.start_mono
        by_property = self.settings.correlation_data
        inflight = self.inflight
        faults, fanout = self.faults, ctx.fanout
        seq = 0
        try:
            await self.connected.wait()
            for offset in ctx.schedule(conn):
                intended = start + offset
                now = time.monotonic_ns()
                if intended > now:
                    await sleep_until(intended)
                    now = time.monotonic_ns()
                elif seq % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                seq += 1
                kind, cid, data = message(seq)
                notify = kind.expect in ("none", "fanout")
                if kind.expect == "stream":
                    inflight.open_stream(cid)
                if faults is not None and not notify:
                    await faults.send(self, seq=seq, cid=cid, intended=intended, data=data)
                    continue
                session = self.session
                if not notify:
                    pending[cid] = (seq, intended, now)
                elif fanout is not None and kind.expect == "fanout":  # the topic is the group
                    fanout.sent(cid, conn=conn, seq=seq, intended=intended, sent=now,
                                group=topic)
                correlation = cid.encode() if by_property else None
                if session is None or not session.publish(data, correlation):
                    pending.pop(cid, None)
                    if fanout is not None:
                        fanout.cancel(cid)
                    record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                            "not_connected", "not connected when due", None))
                    continue
                record((NOTIFY_CODE if notify else SEND_CODE, now, conn, seq, cid, intended,
                        now, len(data), topic, topic if kind.expect == "fanout" else None,
                        None, data))
            if faults is not None:
                await faults.finish(self)
        finally:
            self.sending_done.set()
            if fanout is not None:
                fanout.sender_done()

    # -- the fault injector's seam (streambench.generate.faults.inject.Faultable) -----
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        now = time.monotonic_ns()
        session = self.session
        self.inflight.pending[cid] = (seq, intended, now)
        correlation = cid.encode() if self.settings.correlation_data else None
        if session is None or not session.publish(data, correlation):
            del self.inflight.pending[cid]
            self.ctx.record((Kind.ERROR, now, self.conn, seq, cid, intended, None, None,
                             self.topic, "not_connected", "not connected when due", None))
            return
        self.ctx.record((SEND_CODE, now, self.conn, seq, cid, intended, now, len(data),
                         self.topic, None, None, data))

    async def send_copy(self, data: bytes) -> None:
        session = self.session
        if session is not None:
            with contextlib.suppress(Exception):
                session.publish(data)

    def abort(self) -> None:
        if self.session is not None:
            self.session.abort()

