"""Bidirectional-streaming methods: one long-lived stream per connection.

Each scheduled message is one write on the stream at its intended time; a
reader takes replies as they come and matches them by their ``message.cid_field``
(as the WebSocket client matches JSON replies). Rows:

* ``connect`` (status ``open``) when a stream opens; ``disconnect`` when it
  ends, ``status`` the gRPC status it ended with (``OK``, ``UNAVAILABLE``,
  ``INTERNAL`` for a reset stream, ...), ``error`` the details;
* ``send`` per write, ``recv`` per matched reply;
* a reply whose cid is missing is ``garbage``, unknown ``unmatched``, timed out
  ``late``; one that does not decode as the reply type is ``garbage``;
* when a stream ends, what was in flight on it is an ``error`` row each with the
  stream's status (``disconnected`` for a disconnect fault, or a stream the
  server closed cleanly too early);
* messages due while no stream is open are ``not_connected``; a write the
  stream refuses is ``send_failed``.

A lost stream is reopened with ``target.reconnect`` backoff (on a new channel
when the old one is gone); ``target.deadline`` bounds each stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import grpc

from streambench.capture.schema import RECV_CODE, SEND_CODE, Kind
from streambench.errors import TargetError, TargetUnreachable
from streambench.generate.protocols.grpc.channel import closed_under_us, status_of
from streambench.generate.protocols.grpc.codec import CodecError

if TYPE_CHECKING:
    from streambench.generate.protocols.grpc.client import GrpcConnection

_WRITE_FAILED = (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError)


class StreamPump:
    """The stream of one connection: its writer side (the sender) and its reader."""

    def __init__(self, conn: GrpcConnection) -> None:
        self.c = conn
        self.call: Any = None  # the open grpc.aio.StreamStreamCall, or None
        self.connected = asyncio.Event()
        self.aborted = False
        self._write_lock = asyncio.Lock()  # with faults, delayed sends write from tasks too
        self._closing: set[asyncio.Task[None]] = set()

    async def open(self, channel: grpc.aio.Channel) -> Any:
        """Start the stream; raise TargetError when the server refuses it at once."""
        c = self.c
        call: Any = channel.stream_stream(c.rpc.path)(timeout=c.deadline, metadata=c.metadata)
        try:
            async with asyncio.timeout(c.target.connect_timeout):
                await call.wait_for_connection()
        except TimeoutError as exc:
            call.cancel()
            raise TargetUnreachable(c.ctx.url, "the stream did not open in "
                                    f"{c.target.connect_timeout:g}s") from exc
        except grpc.aio.AioRpcError as exc:
            raise TargetError(f"target {c.ctx.url} refused {c.rpc.path}: "
                              f"{status_of(exc)[1]}") from exc
        return call

    async def run(self, handle: Any) -> None:  # pragma: no cover - GrpcConnection.run
        raise NotImplementedError

    async def serve(self, call: Any) -> None:
        """Read replies until the stream ends; then resolve what was in flight on it."""
        c = self.c
        self.call, self.aborted = call, False
        c.record_event(Kind.CONNECT, status="open")
        self.connected.set()
        closer = asyncio.create_task(self._close_when_done(call), name=f"{c.name}.drain")
        status, error = "OK", None
        try:
            read, on_reply = call.read, self.on_reply
            while (data := await read()) is not grpc.aio.EOF:
                on_reply(data)
        except grpc.aio.AioRpcError as exc:
            status, error = status_of(exc)
        except asyncio.CancelledError:
            if not closed_under_us():
                raise
            status, error = "CANCELLED", "channel closed"
        finally:
            closer.cancel()
            self.call = None
            self.connected.clear()
            if not call.done():  # the run is being cancelled: do not leave it open
                call.cancel()
            self._ended(status, error)

    def _ended(self, status: str, error: str | None) -> None:
        c = self.c
        if self.aborted:
            status, error = "disconnected", "channel closed (disconnect fault)"
        c.record_event(Kind.DISCONNECT, status=status, error=error)
        lost = status if status not in ("OK", "CANCELLED") else "disconnected"
        c.inflight.fail_all(time.monotonic_ns(), lost, error or "stream ended", c.topic)

    async def _close_when_done(self, call: Any) -> None:
        """Half-close once the schedule is done and every reply is in (or timed out)."""
        c = self.c
        await c.sending_done.wait()
        # Polled: signalling "empty" from the reply path would cost every reply.
        while c.inflight.pending and not c.ctx.stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        async with self._write_lock:
            await call.done_writing()

    # -- receiving -----------------------------------------------------------------
    def on_reply(self, data: bytes) -> None:
        """Match one reply to its message by cid; anything unexpected is an error row."""
        c = self.c
        now = time.monotonic_ns()
        try:
            cid, payload = c.codec.reply(data)
        except CodecError as exc:
            c.ctx.record((Kind.ERROR, now, c.conn, None, None, None, None, len(data), c.topic,
                          "garbage", str(exc), None))
            return
        if cid is None:
            c.ctx.record((Kind.ERROR, now, c.conn, None, None, None, None, len(data), c.topic,
                          "garbage", "reply without a correlation id", payload))
            return
        sent = c.inflight.pending.pop(cid, None)
        if sent is None:
            late = cid in c.inflight.late
            c.ctx.record((Kind.ERROR, now, c.conn, None, cid, None, None, len(data), c.topic,
                          "late" if late else "unmatched",
                          "reply after its timeout" if late else "unknown correlation id",
                          payload))
            return
        seq, intended, sent_at = sent
        c.ctx.record((RECV_CODE, now, c.conn, seq, cid, intended, sent_at, len(data), c.topic,
                      None, None, payload))

    # -- sending -------------------------------------------------------------------
    async def send(self, seq: int, cid: str, intended: int, wire: bytes, frame: bytes) -> None:
        """Write one message now (waiting for room on the stream counts as schedule lag)."""
        c = self.c
        call = self.call
        now = time.monotonic_ns()
        if call is None or call.done():
            c.ctx.record((Kind.ERROR, now, c.conn, seq, cid, intended, None, None, c.topic,
                          "not_connected", "not connected when due", None))
            return
        c.inflight.pending[cid] = (seq, intended, now)  # before the write: replies are quick
        try:
            if c.faults is None:  # the sender is the only writer
                await call.write(wire)
            else:
                async with self._write_lock:
                    await call.write(wire)
        except _WRITE_FAILED as exc:
            c.inflight.pending.pop(cid, None)  # the stream's end may have failed it already
            c.ctx.record((Kind.ERROR, now, c.conn, seq, cid, intended, None, None, c.topic,
                          "send_failed", f"stream closed while sending: {type(exc).__name__}",
                          None))
            return
        c.ctx.record((SEND_CODE, now, c.conn, seq, cid, intended, now, len(wire), c.topic,
                      None, None, frame))

    async def send_copy(self, wire: bytes) -> None:
        call = self.call
        if call is not None and not call.done():
            try:
                async with self._write_lock:
                    await call.write(wire)
            except _WRITE_FAILED:
                return

    def abort(self) -> None:
        """Close the channel under the stream: its TCP connection goes at once."""
        c = self.c
        channel, c.channel = c.channel, None
        if channel is None:
            return
        self.aborted = True
        task = asyncio.get_running_loop().create_task(channel.close(), name=f"{c.name}.abort")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
