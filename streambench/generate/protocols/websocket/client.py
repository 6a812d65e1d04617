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
from streambench.generate.engine.context import Inflight, RunContext, sleep_until
from streambench.generate.engine.replies import ReplyMatcher
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

Due = tuple[int, str, int, bytes]  # (seq, cid, intended_mono, frame)


class WebSocketConnection(EventRecorder):
    """One connection: its sender, its receiver and what is in flight on it."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.name = f"websocket[{conn}]"
        self.topic = urlsplit(ctx.url).path or "/"
        self.inflight = Inflight(conn, ctx.record)
        self.matcher = ReplyMatcher(ctx, self.inflight, conn=conn, topic=self.topic)
        self.ws: WebSocketPump | None = None
        self.connected = asyncio.Event()
        self.sending_done = asyncio.Event()
        self.faults: FaultInjector | None = None  # set by the runner when the run has faults

    # -- connecting ----------------------------------------------------------
    async def open(self) -> WebSocketPump:
        """Connect once; third-party errors become streambench's, most specific first."""
        target = target_as(self.ctx, WebSocketTarget)
        try:
            async with asyncio.timeout(target.connect_timeout):
                return await open_pump(self.ctx.url, self.on_reply,
                                       headers=self.ctx.headers or None,
                                       max_size=target.max_message_bytes,
                                       dial=self.ctx.dial)
        except TimeoutError as exc:
            raise TargetUnreachable(self.ctx.url, f"no answer in {target.connect_timeout:g}s"
                                    ) from exc
        except InvalidURI as exc:
            raise ConfigError(f"target.url: not a WebSocket URL: {self.ctx.url!r}") from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise TargetError(f"target {self.ctx.url} refused the WebSocket upgrade: "
                              f"HTTP {status}") from exc
        except InvalidHandshake as exc:
            raise TargetError(f"target {self.ctx.url}: WebSocket handshake failed: {exc}"
                              ) from exc
        except OSError as exc:
            raise TargetUnreachable(self.ctx.url, os_reason(exc)) from exc

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
        """Close once the schedule is done and every reply is in (or timed out)."""
        await self.sending_done.wait()
        # Polled: signalling "empty" from the reply path would cost every reply.
        while self.inflight.pending and not self.ctx.stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await ws.close()

    # -- receiving (called by the pump, synchronously, per message) --------
    def on_reply(self, message: str | bytes) -> None:
        """Match one reply to its request; anything unexpected is an error row."""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        self.matcher.on_reply(message, time.monotonic_ns())

    # -- sending -------------------------------------------------------------
    async def send_all(self) -> None:
        """Send every scheduled message at its intended time (open model).

        Messages due at the same wake-up are framed together and written in
        one system call; each is recorded with the time of that write.
        """
        ctx = self.ctx
        frame = ctx.frame
        start = ctx.start_mono
        global_conn = ctx.conn_offset + self.conn
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
                cid = f"{global_conn}-{seq}"
                data = frame(seq, cid, seq)
                if faults is not None:
                    await faults.send(self, seq=seq, cid=cid, intended=intended, data=data)
                    continue
                due.append((seq, cid, intended, data))
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

    async def _send_due(self, due: list[Due]) -> None:
        """Write every due message at once and record them (or why they were not sent)."""
        ws = self.ws
        if ws is not None:
            await ws.drain()  # the kernel's buffer is full: waiting here is measured as lag
            ws = self.ws
        record, conn, topic = self.ctx.record, self.conn, self.topic
        now = time.monotonic_ns()
        if ws is None or not ws.open:
            for seq, cid, intended, _ in due:
                record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                        "not_connected", "not connected when due", None))
            return
        pending = self.inflight.pending
        for seq, cid, intended, _ in due:
            pending[cid] = (seq, intended, now)
        try:
            ws.send_many([d[3] for d in due])
        except ConnectionClosed:
            for seq, cid, intended, _ in due:
                pending.pop(cid, None)  # a close may already have failed it
                record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                        "send_failed", "connection closed while sending", None))
            return
        for seq, cid, intended, data in due:
            record((Kind.SEND, now, conn, seq, cid, intended, now, len(data), topic, None,
                    None, data))

    # -- the fault injector's seam (streambench.generate.faults.inject.Faultable) -----
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        """Send one message now and record it, as the send loop does."""
        await self._send_due([(seq, cid, intended, data)])

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
