"""The WebSocket client: N persistent connections, open-model senders.

Per connection two tasks: the *sender* walks the connection's schedule and
sends each message at its intended time whether or not earlier replies came
back; the *connection* task connects (with backoff on reconnect), receives,
and matches replies to requests by correlation id. Only sending, receiving
and appending rows happen here; no per-message parsing beyond finding the cid.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from streambench.capture.schema import Kind
from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.context import Inflight, RunContext, backoff
from streambench.generate.inject import FaultInjector

_CID_KEY = '"cid":"'
_YIELD_EVERY = 64  # a sender behind schedule still lets the receiver run


class WebSocketConnection:
    """One connection: its sender, its receiver and what is in flight on it."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.name = f"websocket[{conn}]"
        self.topic = urlsplit(ctx.url).path or "/"
        self.inflight = Inflight(conn, ctx.record)
        self.ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.sending_done = asyncio.Event()
        cid_field = ctx.scenario.message.cid_field
        self.cid_key = _CID_KEY if cid_field == "cid" else f'"{cid_field}":"'
        self.body_has_error = "error" in ctx.scenario.message.body
        self.faults: FaultInjector | None = None  # set by the runner when the run has faults

    # -- connecting ----------------------------------------------------------
    async def open(self) -> ClientConnection:
        target = self.ctx.scenario.target
        heartbeat = self.ctx.scenario.load.heartbeat
        try:
            async with asyncio.timeout(target.connect_timeout):
                return await connect(
                    self.ctx.url,
                    additional_headers=self.ctx.headers or None,
                    compression=None,  # measure the server, not zlib
                    max_size=target.max_message_bytes,
                    ping_interval=heartbeat,
                    ping_timeout=heartbeat,
                    open_timeout=None,  # asyncio.timeout above covers it
                    close_timeout=1,
                )
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
            raise TargetUnreachable(self.ctx.url, exc.strerror or str(exc)) from exc

    async def run(self, ws: ClientConnection) -> None:
        """Receive on an open connection until the schedule is done and replies are in.

        A lost connection is recorded and re-opened with backoff; failures to
        reconnect are recorded as ``connect_failed`` errors, not raised (the
        first connection is opened by the engine, where failing is an answer).
        """
        ctx = self.ctx
        reconnect = ctx.scenario.target.reconnect
        while True:
            await self._serve(ws)
            if ctx.stop.is_set() or (self.sending_done.is_set() and not self.inflight.pending):
                return
            if self.faults is not None:
                await self.faults.hold_down(self.conn)
            delays = backoff(reconnect.initial, reconnect.max, reconnect.factor)
            attempts = 0
            while True:
                await asyncio.sleep(next(delays))
                try:
                    ws = await self.open()
                    break
                except (TargetError, ConfigError) as exc:
                    self._record(Kind.ERROR, status="connect_failed", error=str(exc))
                    attempts += 1
                    if reconnect.attempts is not None and attempts >= reconnect.attempts:
                        return
                if self.sending_done.is_set() and not self.inflight.pending:
                    return

    async def _serve(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._record(Kind.CONNECT, status="open")
        self.connected.set()
        closer = asyncio.create_task(self._close_when_done(ws),
                                     name=f"websocket[{self.conn}].drain")
        try:
            await self._receive(ws)
        finally:
            closer.cancel()
            self.ws = None
            self.connected.clear()
            code = ws.close_code
            self._record(Kind.DISCONNECT, status=None if code is None else str(code),
                         error=ws.close_reason or None)
            self.inflight.fail_all(time.monotonic_ns(), "disconnected",
                                   f"connection closed ({code})", self.topic)

    async def _close_when_done(self, ws: ClientConnection) -> None:
        """Close once the schedule is done and every reply is in (or timed out)."""
        await self.sending_done.wait()
        # Polled: signalling "empty" from the reply path would cost every reply.
        while self.inflight.pending and not self.ctx.stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await ws.close()

    # -- receiving -----------------------------------------------------------
    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self.on_reply(message)
        except ConnectionClosed as exc:
            if (exc.rcvd is not None and exc.rcvd.code == 1009) or (
                exc.sent is not None and exc.sent.code == 1009
            ):
                self._record(Kind.ERROR, status="too_big",
                             error=f"frame larger than {ws.max_size} bytes")

    def on_reply(self, message: str | bytes) -> None:
        """Match one reply to its request; anything unexpected is an error row."""
        now = time.monotonic_ns()
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        key = self.cid_key
        start = message.rfind(key)
        if start < 0:
            self._record(Kind.ERROR, status="garbage", error="reply without a correlation id",
                         payload=message[:4096], now=now)
            return
        start += len(key)
        cid = message[start:message.find('"', start)]
        sent = self.inflight.pending.pop(cid, None)
        if sent is None:
            late = cid in self.inflight.late
            self._record(Kind.ERROR, status="late" if late else "unmatched", cid=cid,
                         error="reply after its timeout" if late else "unknown correlation id",
                         payload=message[:4096], now=now)
            return
        seq, intended, sent_at = sent
        if '"error"' in message and not self.body_has_error:
            error = _error_text(message)
            if error is not None:
                self.ctx.record((Kind.ERROR, now, self.conn, seq, cid, intended, sent_at,
                                 len(message), self.topic, "error_reply", error, message))
                return
        self.ctx.record((Kind.RECV, now, self.conn, seq, cid, intended, sent_at, len(message),
                         self.topic, None, None, message))

    # -- sending -------------------------------------------------------------
    async def send_all(self) -> None:
        """Send every scheduled message at its intended time (open model)."""
        ctx = self.ctx
        record = ctx.record
        pending = self.inflight.pending
        frame = ctx.frame
        conn, topic, start = self.conn, self.topic, ctx.start_mono
        global_conn = ctx.conn_offset + conn
        faults = self.faults
        seq = 0
        try:
            await self.connected.wait()
            for offset in ctx.schedule(conn):
                intended = start + offset
                now = time.monotonic_ns()
                if intended > now:
                    await asyncio.sleep((intended - now) / 1e9)
                    now = time.monotonic_ns()
                elif seq % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                seq += 1
                cid = f"{global_conn}-{seq}"
                data = frame(seq, cid, seq)
                if faults is not None:
                    await faults.send(self, seq=seq, cid=cid, intended=intended, data=data)
                    continue
                ws = self.ws
                if ws is None:
                    record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                            "not_connected", "not connected when due", None))
                    continue
                pending[cid] = (seq, intended, now)
                try:
                    await ws.send(data, text=True)
                except ConnectionClosed:
                    del pending[cid]
                    record((Kind.ERROR, now, conn, seq, cid, intended, None, None, topic,
                            "send_failed", "connection closed while sending", None))
                    continue
                record((Kind.SEND, now, conn, seq, cid, intended, now, len(data), topic, None,
                        None, data))
            if faults is not None:
                await faults.finish(self)
        finally:
            self.sending_done.set()

    # -- the fault injector's seam (streambench.generate.inject.Faultable) -----
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        """Send one message now and record it, as the send loop does."""
        now = time.monotonic_ns()
        ws = self.ws
        if ws is None:
            self.ctx.record((Kind.ERROR, now, self.conn, seq, cid, intended, None, None,
                             self.topic, "not_connected", "not connected when due", None))
            return
        self.inflight.pending[cid] = (seq, intended, now)
        try:
            await ws.send(data, text=True)
        except ConnectionClosed:
            self.inflight.pending.pop(cid, None)
            self.ctx.record((Kind.ERROR, now, self.conn, seq, cid, intended, None, None,
                             self.topic, "send_failed", "connection closed while sending",
                             None))
            return
        self.ctx.record((Kind.SEND, now, self.conn, seq, cid, intended, now, len(data),
                         self.topic, None, None, data))

    async def send_copy(self, data: bytes) -> None:
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(data, text=True)

    def abort(self) -> None:
        ws = self.ws
        if ws is not None:
            ws.transport.abort()

    def _record(self, kind: Kind, *, status: str | None = None, error: str | None = None,
                cid: str | None = None, payload: str | None = None,
                now: int | None = None) -> None:
        self.ctx.record((kind, now or time.monotonic_ns(), self.conn, None, cid, None, None,
                         None, self.topic, status, error, payload))


def _error_text(message: str) -> str | None:
    """The server's error text if the reply is a JSON error object, else None."""
    try:
        doc = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return None
