"""The WebSocket client: N persistent connections, open-model senders.

Per connection two tasks: the *sender* walks the connection's schedule and
sends each message at its intended time whether or not earlier replies came
back; the *connection* task connects (with backoff on reconnect), and
matches replies to requests by correlation id. The bytes move through
:mod:`streambench.generate.protocols.websocket.pump` (websockets' sans-I/O protocol on a lean
asyncio pump): every message due at a wake-up goes out in one write, and
replies are matched in the pump's ``data_received`` callback, with no
per-message future or task switch. No per-message parsing beyond finding the
cid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from streambench.capture.schema import Kind
from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.engine.clock import sleep_until
from streambench.generate.engine.context import Inflight, RunContext
from streambench.generate.engine.fanout import render_group
from streambench.generate.engine.replies import ReplyMatcher
from streambench.generate.engine.steps import StepWaiter, run_steps
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.protocols.base import (
    EventRecorder,
    os_reason,
    serve_reconnecting,
    target_as,
)
from streambench.generate.protocols.websocket.pump import WebSocketPump, open_pump
from streambench.logs import get_logger
from streambench.scenario.model import WebSocketTarget

log = get_logger("streambench.websocket")
_BATCH_MAX = 256  # a sender behind schedule still lets the receiver run between batches

Due = tuple[int, str, int, bytes, str]  # (seq, cid, intended_mono, frame, what it expects)
_NO_REPLY = ("none", "fanout")  # kinds sent as notify rows: nothing comes back to the sender


class WebSocketConnection(EventRecorder):
    """One connection: its sender, its receiver and what is in flight on it."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.name = f"websocket[{conn}]"
        self.plan = ctx.conversation
        self.framer = ctx.conversation.framer(ctx.conn_offset + conn)
        url = ctx.conversation.url(ctx.url) if ctx.conversation.url else ctx.url
        self.url = render_group(url, self.framer.values) if "{{" in url else url
        self.topic = urlsplit(self.url).path or "/"
        self.inflight = Inflight(conn, ctx.record)
        self.group = ""  # the fan-out group this connection is a member of
        if ctx.fanout is not None:
            fanout = ctx.scenario.fanout
            template = fanout.group if fanout is not None and fanout.group else "all"
            self.group = render_group(template, self.framer.values)
            ctx.fanout.join(conn, self.group)
        self.matcher = ReplyMatcher(ctx, self.inflight, conn=conn, topic=self.topic,
                                    respond=self._respond)
        self.ws: WebSocketPump | None = None
        self._opening: WebSocketPump | None = None  # connected, set-up steps running
        self._waiter: StepWaiter | None = None  # the answer a set-up step awaits
        # Replies that came before a step waited for them (a greeting sent with the
        # handshake's response), kept for the next step while the steps run.
        self._early: list[tuple[str, int]] | None = None
        self.connected = asyncio.Event()
        self.sending_done = asyncio.Event()
        self.faults: FaultInjector | None = None  # set by the runner when the run has faults

    # -- connecting ----------------------------------------------------------
    async def open(self) -> WebSocketPump:
        """Connect and run the set-up steps (on every connect, reconnects included)."""
        if not self.plan.steps:
            return await self._connect()
        self._early = []
        try:
            pump = await self._connect()
            self._opening = pump
            try:
                await run_steps(self.plan, self.framer, send=lambda data: pump.send_many([data]),
                                closed=pump.closed, record=self.ctx.record,
                                wait_with=self._wait_with, conn=self.conn, topic=self.topic,
                                url=self.url)
            except BaseException:
                pump.abort()
                raise
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
        try:
            async with asyncio.timeout(target.connect_timeout):
                return await open_pump(self.url, self.on_reply,
                                       headers=self.ctx.headers or None,
                                       max_size=target.max_message_bytes,
                                       subprotocols=self.plan.subprotocols,
                                       dial=self.ctx.dial)
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
            raise TargetUnreachable(self.url, os_reason(exc)) from exc

    async def run(self, ws: WebSocketPump) -> None:
        """Serve an open connection, reconnecting with backoff when it is lost."""
        await serve_reconnecting(self, ws)

    async def serve(self, ws: WebSocketPump) -> None:
        self.ws = ws
        self.record_event(Kind.CONNECT, status="open")
        self.connected.set()
        helpers = [asyncio.create_task(self._close_when_done(ws), name=f"{self.name}.drain")]
        heartbeat = self.ctx.scenario.load.heartbeat
        if heartbeat:
            helpers.append(asyncio.create_task(self._ping_every(ws, heartbeat),
                                               name=f"{self.name}.heartbeat"))
        try:
            await asyncio.shield(ws.closed)
        finally:
            for task in helpers:
                task.cancel()
            if not ws.closed.done():  # the run is being cancelled: do not leave it open
                ws.abort()
            self.ws = None
            self.connected.clear()
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

    async def _close_when_done(self, ws: WebSocketPump) -> None:
        """Close once the schedule is done and every reply is in (or timed out), and the
        open streams have ended (for at most ``load.timeout`` more)."""
        await self.sending_done.wait()
        # Polled: signalling "empty" from the reply path would cost every reply.
        inflight, stop = self.inflight, self.ctx.stop
        while inflight.pending and not stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if self.ctx.fanout is not None:  # members stay until the last broadcast has drained
            await self.ctx.fanout.wait_drained(stop)
        streams_end = time.monotonic_ns() + self.ctx.timeout_ns
        while inflight.streams and not stop.is_set() and time.monotonic_ns() < streams_end:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await ws.close()

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
        streams = self.inflight.streams
        faults = self.faults
        due: list[Due] = []
        seq = 0
        try:
            await self.connected.wait()
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
                    streams.add(cid)
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
        finally:
            self.sending_done.set()
            if ctx.fanout is not None:
                ctx.fanout.sender_done()

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
            record((Kind.NOTIFY if notify else Kind.SEND, now, conn, seq, cid, intended, now,
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

    def abort(self) -> None:
        ws = self.ws
        if ws is not None:
            ws.abort()

    async def _ping_every(self, ws: WebSocketPump, interval: float) -> None:
        """Heartbeats keep idle connections alive through proxies and NAT, and find
        dead ones: a ping still unanswered when the next is due means the connection
        is gone (half-open: a blackhole, a dead peer). It is recorded as a
        ``heartbeat_timeout`` error and aborted; the client reconnects.

        Each connection pings at its own phase of the interval (a golden-ratio
        spread), so 10,000 connections opened together do not all ping in the
        same instant and stall the event loop every interval.
        """
        await asyncio.sleep(interval * ((self.conn * 0.6180339887) % 1.0))
        while ws.open:
            pongs = ws.pongs
            ws.ping()
            await asyncio.sleep(interval)
            if ws.open and ws.pongs == pongs:
                self.record_event(Kind.ERROR, status="heartbeat_timeout",
                                  error=f"heartbeat timeout: no pong within {interval:g}s")
                ws.abort()
