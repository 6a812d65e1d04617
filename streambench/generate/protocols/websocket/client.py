"""The WebSocket client: N persistent connections, open-model senders.

Per connection one task, the *sender*: it walks the connection's schedule and
sends each message at its intended time whether or not earlier replies came
back, then holds the connection to the end of the run's schedule, waits for
the last replies and closes. Replies arrive in the pump's callback; a lost
connection is recorded from the pump's ``connection_lost`` and reopened (with
backoff) by a task that exists only while reconnecting. The bytes move through
:mod:`streambench.generate.protocols.websocket.pump` (websockets' sans-I/O
protocol on a lean asyncio pump): every message due at a wake-up goes out in
one write, and replies are matched in the pump's ``data_received`` callback,
with no per-message future or task switch. No per-message parsing beyond
finding the cid.

An idle connection is kept small (docs/scale.md measures it): slots, no
``asyncio.Event`` (a :class:`Flag` makes a future only while waited on),
heartbeats from one task for all connections, and no task but the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from streambench.capture.schema import NOTIFY_CODE, SEND_CODE, Kind
from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.engine.clock import sleep_until
from streambench.generate.engine.context import Flag, Inflight, RunContext, backoff
from streambench.generate.engine.fanout import render_group
from streambench.generate.engine.replies import ReplyMatcher
from streambench.generate.engine.steps import StepWaiter, run_steps
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.protocols.base import (
    EventRecorder,
    done_serving,
    healthy_uptime,
    os_reason,
    reconnect,
    reconnect_settings,
    target_as,
)
from streambench.generate.protocols.websocket.pump import WebSocketPump, open_pump
from streambench.generate.scale.limits import kernel_refusal
from streambench.logs import get_logger
from streambench.scenario.model import WebSocketTarget

log = get_logger("streambench.websocket")
_BATCH_MAX = 256  # a sender behind schedule still lets the receiver run between batches
_SWEEP_SLACK_S = 0.1  # the engine's timeout sweep runs every <= 50 ms

Due = tuple[int, str, int, bytes, str]  # (seq, cid, intended_mono, frame, what it expects)
_NO_REPLY = ("none", "fanout")  # kinds sent as notify rows: nothing comes back to the sender


class WebSocketConnection(EventRecorder):
    """One connection: its sender, its receiver and what is in flight on it."""

    __slots__ = ("_adopted", "_delays", "_drained", "_early", "_opening", "_ready",
                 "_reconnecting", "_waiter", "conn",
                 "ctx", "faults", "framer", "group", "inflight", "matcher", "plan",
                 "sending_done", "topic", "url", "ws")

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.plan = ctx.conversation
        self.framer = ctx.conversation.framer(ctx.conn_offset + conn)
        url = ctx.conversation.url(ctx.url) if ctx.conversation.url else ctx.url
        self.url = render_group(url, self.framer.values) if "{{" in url else url
        self.topic = sys.intern(urlsplit(self.url).path or "/")  # one string per process
        self.inflight = Inflight(conn, ctx.record)
        self.group = ""  # the fan-out group this connection is a member of
        if ctx.fanout is not None:
            fanout = ctx.scenario.fanout
            template = fanout.group if fanout is not None and fanout.group else "all"
            self.group = render_group(template, self.framer.values)
            ctx.fanout.join(conn, self.group)
        self.matcher = ReplyMatcher(ctx, self.inflight, conn=conn, topic=self.topic,
                                    respond=self._respond if ctx.conversation.responses else None)
        self.ws: WebSocketPump | None = None
        self._opening: WebSocketPump | None = None  # connected, set-up steps running
        self._waiter: StepWaiter | None = None  # the answer a set-up step awaits
        # Replies that came before a step waited for them (a greeting sent with the
        # handshake's response), kept for the next step while the steps run.
        self._early: list[tuple[str, int]] | None = None
        self._ready = Flag()  # connected once: the sender starts
        self.sending_done = Flag()  # the schedule is over: no reconnect after a loss
        self._drained: asyncio.Future[None] | None = None  # set while waiting for replies
        self._reconnecting: asyncio.Task[None] | None = None  # only after a loss
        self._adopted = 0.0  # when the open connection was taken up (time.monotonic())
        self._delays: Iterator[float] | None = None  # the reconnect backoff, after a loss
        self.faults: FaultInjector | None = None  # set by the runner when the run has faults

    @property
    def name(self) -> str:
        return f"websocket[{self.conn}]"

    # -- connecting ----------------------------------------------------------
    async def open(self) -> WebSocketPump:
        """Connect and run the set-up steps (on every connect, reconnects included)."""
        if not self.plan.steps:
            return await self._connect()
        self._early = []
        try:
            pump = await self._connect()
            self._opening = pump
            closed = pump.closed_future()
            try:
                await run_steps(self.plan, self.framer, send=lambda data: pump.send_many([data]),
                                closed=closed, record=self.ctx.record,
                                wait_with=self._wait_with, conn=self.conn, topic=self.topic,
                                url=self.url)
            except BaseException:
                pump.abort()
                raise
            finally:
                pump.forget(closed)
        finally:
            self._opening = None
            early, self._early = self._early or [], None
            for message, at in early:  # what no step took is classified as usual
                self.matcher.on_reply(message, at)
        return pump

    def _wait_with(self, waiter: StepWaiter | None) -> None:
        self._waiter = waiter
        early = self._early
        if waiter is None or not early:
            return
        for index, (message, at) in enumerate(early):
            if waiter.offer(message, at):
                del early[index]
                return

    async def _connect(self) -> WebSocketPump:
        """Connect once; third-party errors become streambench's, most specific first."""
        target = target_as(self.ctx, WebSocketTarget)
        source = self.ctx.source_address(self.conn)
        try:
            async with asyncio.timeout(target.connect_timeout):
                return await open_pump(self.url, self.on_reply,
                                       headers=self.ctx.headers or None,
                                       max_size=target.max_message_bytes,
                                       subprotocols=self.plan.subprotocols,
                                       source_address=source, dial=self.ctx.dial)
        except TimeoutError as exc:
            raise TargetUnreachable(self.url, f"no answer in {target.connect_timeout:g}s"
                                    ) from exc
        except InvalidURI as exc:
            raise ConfigError(f"target.url: not a WebSocket URL: {self.url!r}") from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise TargetError(f"target {self.url} refused the WebSocket upgrade: "
                              f"HTTP {status}") from exc
        except InvalidHandshake as exc:
            raise TargetError(f"target {self.url}: WebSocket handshake failed: {exc}"
                              ) from exc
        except OSError as exc:
            refusal = kernel_refusal(exc, source=source)
            if refusal is not None:
                raise refusal from exc
            raise TargetUnreachable(self.url, os_reason(exc)) from exc

    async def run(self, ws: WebSocketPump) -> None:
        self.adopt(ws)

    def adopt(self, ws: WebSocketPump) -> None:
        """Take up the connection the engine opened (the engine calls this instead of
        :meth:`run`): an open connection needs no task of its own (replies arrive in
        the pump's callback, a loss calls :meth:`_on_lost`, which reconnects);
        :meth:`send_all` is the connection's task."""
        self.ws = ws
        self._adopted = time.monotonic()
        ws.on_lost = self._on_lost
        self.record_event(Kind.CONNECT, status="open")
        self._ready.set()
        if ws.is_closed:  # it closed before it was taken up (a server that closes at once)
            self._on_lost(ws)

    def _on_lost(self, ws: WebSocketPump) -> None:
        """The pump's connection is gone: record it, fail what was in flight, reconnect."""
        ws.on_lost = None
        if self.ws is ws:
            self.ws = None
        code = ws.close_code
        if ws.closed_by_size:
            limit = target_as(self.ctx, WebSocketTarget).max_message_bytes
            self.record_event(Kind.ERROR, status="too_big",
                              error=f"frame larger than {limit} bytes")
        self.record_event(Kind.DISCONNECT, status=None if code is None else str(code),
                          error=ws.close_reason or None)
        if not self.sending_done.is_set():
            log.info("connection lost (close code %s)", code, extra={"conn": self.conn})
        self.inflight.fail_all(time.monotonic_ns(), "disconnected",
                               f"connection closed ({code})", self.topic)
        self._wake_drain()
        if not done_serving(self) and self._reconnecting is None:
            self._reconnecting = asyncio.create_task(self._reconnect(),
                                                     name=f"{self.name}.reconnect")

    async def _reconnect(self) -> None:
        """Open the connection again with backoff (target.reconnect); runs only after a loss.

        A server that accepts and closes at once must not be hammered: the
        backoff starts over only after a connection that stayed up a while.
        """
        settings = reconnect_settings(self.ctx)
        try:
            while self.ws is None and not done_serving(self):
                if self._delays is None or time.monotonic() - self._adopted >= \
                        healthy_uptime(settings.max):
                    self._delays = backoff(settings.initial, settings.max, settings.factor)
                ws = await reconnect(self, self._delays)
                if ws is None:
                    return
                self.adopt(ws)  # lost again at once: self.ws is None, and round again
                if self.sending_done.is_set() and not ws.is_closed:  # back after the end
                    await ws.close()
        finally:
            self._reconnecting = None

    async def _finish(self) -> None:
        """Hold the connection to the schedule's end, wait for the replies, then close."""
        ctx = self.ctx
        await sleep_until(ctx.end_mono)  # `duration` holds every connection that long
        self._sending_over()
        loop = asyncio.get_running_loop()
        pending = self.inflight.pending
        while pending and not ctx.stop.is_set():
            # woken by the reply that empties it, a lost connection, or the head's timeout
            # (recorded by the engine's sweep): no polling, and nothing added per reply
            # but one attribute test
            _, intended, _ = next(iter(pending.values()))
            wait_s = (intended + ctx.timeout_ns - time.monotonic_ns()) / 1e9 + _SWEEP_SLACK_S
            self._drained = drained = loop.create_future()
            try:
                async with asyncio.timeout(max(wait_s, _SWEEP_SLACK_S)):
                    await drained
            except TimeoutError:
                pass
            finally:
                self._drained = None
            pending = self.inflight.pending
        if ctx.fanout is not None:  # members stay until the last broadcast has drained
            await ctx.fanout.wait_drained(ctx.stop)
        await self._streams_ended()
        if self._reconnecting is not None:  # it closes what it opens now that sending is done
            await asyncio.shield(self._reconnecting)
        ws = self.ws
        if ws is not None:
            await ws.close()

    async def _streams_ended(self) -> None:
        """Wait (at most ``load.timeout``) for the open streams to end: polled, since a
        signal from the reply path would cost every reply, and it runs once, at the end."""
        inflight, stop = self.inflight, self.ctx.stop
        streams_end = time.monotonic_ns() + self.ctx.timeout_ns
        while inflight.streams and not stop.is_set() and time.monotonic_ns() < streams_end:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    def _sending_over(self) -> None:
        """Nothing more will be sent: no reconnect after a loss, one sender less to wait for."""
        if self.sending_done.is_set():
            return
        self.sending_done.set()
        if self.ctx.fanout is not None:
            self.ctx.fanout.sender_done()

    def _end(self) -> None:
        """The connection's task ends (or is cancelled): nothing may stay open or running."""
        self._sending_over()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        ws = self.ws
        if ws is not None and not ws.is_closed:  # cancelled: drop it, and say so now
            ws.abort()
            self._on_lost(ws)

    def _wake_drain(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- receiving (called by the pump, synchronously, per message) --------
    def on_reply(self, message: str | bytes) -> None:
        """Match one reply to its request; anything unexpected is an error row."""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        now = time.monotonic_ns()
        waiter = self._waiter
        if waiter is not None:
            if waiter.offer(message, now):
                return
        elif self._early is not None:  # the steps run, and none waits right now
            self._early.append((message, now))
            return
        self.matcher.on_reply(message, now)
        if self._drained is not None and not self.inflight.pending:
            self._wake_drain()

    def _respond(self, rule: str, now: int) -> None:
        """Send a rule's ``respond`` frame (a pong for the server's ping)."""
        ws = self.ws or self._opening
        if ws is not None and ws.open:
            ws.send_many([self.framer.fill(self.plan.responses[rule], 0)])

    # -- sending -------------------------------------------------------------
    async def send_all(self) -> None:
        """Send every scheduled message at its intended time (open model).

        Messages due at the same wake-up are framed together and written in
        one system call; each is recorded with the time of that write.
        """
        ctx = self.ctx
        message = self.framer.message
        start = ctx.start_mono
        faults = self.faults
        due: list[Due] = []
        seq = 0
        try:
            await self._ready.wait()
            for offset in ctx.schedule(self.conn):
                intended = start + offset
                if intended > time.monotonic_ns():
                    if due:
                        await self._send_due(due)
                        due = []
                    await sleep_until(intended)
                seq += 1
                kind, cid, data = message(seq)
                expect = kind.expect
                if expect == "stream":
                    self.inflight.open_stream(cid)
                if faults is not None and expect not in _NO_REPLY:
                    await faults.send(self, seq=seq, cid=cid, intended=intended, data=data)
                    continue
                due.append((seq, cid, intended, data, expect))
                if len(due) >= _BATCH_MAX:
                    await self._send_due(due)
                    due = []
                    await asyncio.sleep(0)
            if due:
                await self._send_due(due)
            if faults is not None:
                await faults.finish(self)
            await self._finish()
        finally:
            self._end()

    async def _send_due(self, due: list[Due]) -> None:
        """Write every due message at once and record them (or why they were not sent)."""
        ws = self.ws
        if ws is not None:
            await ws.drain()  # the kernel's buffer is full: waiting here is measured as lag
            ws = self.ws
        record, conn, topic = self.ctx.record, self.conn, self.topic
        now = time.monotonic_ns()
        if ws is None or not ws.open:
            for seq, cid, intended, _, _ in due:
                record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                        "not_connected", "not connected when due", None))
            return
        pending, fanout, group = self.inflight.pending, self.ctx.fanout, self.group
        for seq, cid, intended, _, expect in due:
            if expect == "fanout":
                assert fanout is not None
                fanout.sent(cid, conn=conn, seq=seq, intended=intended, sent=now, group=group)
            elif expect != "none":
                pending[cid] = (seq, intended, now)
        try:
            ws.send_many([d[3] for d in due])
        except ConnectionClosed:
            for seq, cid, intended, _, _ in due:
                pending.pop(cid, None)  # a close may already have failed it
                if fanout is not None:
                    fanout.cancel(cid)
                record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                        "send_failed", "connection closed while sending", None))
            return
        for seq, cid, intended, data, expect in due:
            notify = expect in _NO_REPLY
            record((NOTIFY_CODE if notify else SEND_CODE, now, conn, seq, cid, intended, now,
                    len(data), topic, group if expect == "fanout" else None, None, data))

    # -- the fault injector's seam (streambench.generate.faults.inject.Faultable) -----
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        """Send one message now and record it, as the send loop does."""
        await self._send_due([(seq, cid, intended, data, "reply")])

    async def send_copy(self, data: bytes) -> None:
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                ws.send_many([data])

    def ping(self) -> None:
        """A heartbeat (``load.heartbeat``; the engine's one heartbeat task calls this)."""
        ws = self.ws
        if ws is None:
            return
        if ws.awaiting_pong:  # the last ping is still unanswered: half-open (a blackhole,
            # a dead peer); recorded and aborted, the client reconnects
            interval = self.ctx.scenario.load.heartbeat or 0.0
            self.record_event(Kind.ERROR, status="heartbeat_timeout",
                              error=f"heartbeat timeout: no pong within {interval:g}s")
            ws.abort()
            return
        ws.ping()

    def abort(self) -> None:
        ws = self.ws
        if ws is not None:
            ws.abort()
