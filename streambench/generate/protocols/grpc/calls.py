"""Unary and server-streaming methods: every scheduled message is one call.

A call is started at its message's intended time (a task of its own, so the
sender never waits for an answer) on the connection's channel; the replies
belong to it, whatever their fields say. Rows:

* ``send`` when the call starts;
* unary: ``recv`` (status ``OK``) with the reply, or ``error`` with the gRPC
  status (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, ...) that resolves the message;
* server streaming: one ``recv`` per reply, every one with the call's seq and cid
  and its latency from the call's intended time (``received`` counts replies,
  ``sent`` calls); the first reply resolves the message, and a status other
  than OK at the end is an ``error`` row;
* ``timeout`` from the sweeper when nothing came back within ``load.timeout``;
  a reply after that is ``late``; a reply that does not decode is ``garbage``
  (its message then times out).

A ``disconnect`` fault closes the channel under its calls (they end as
``disconnected``) and opens a new one after the down time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import grpc

from streambench.capture.schema import RECV_CODE, SEND_CODE, Kind
from streambench.generate.protocols.grpc.channel import closed_under_us, open_channel, status_of
from streambench.generate.protocols.grpc.codec import CodecError

if TYPE_CHECKING:
    from streambench.generate.protocols.grpc.client import GrpcConnection

GARBAGE = object()  # a reply that did not decode (its row is written already)
_CLOSED = ("CANCELLED", "CANCELLED: channel closed")


class CallPump:
    """Calls of one connection: started by the sender, ended by their own tasks."""

    def __init__(self, conn: GrpcConnection) -> None:
        self.c = conn
        self.streaming = conn.rpc.kind == "server_stream"
        self.calls: set[asyncio.Task[None]] = set()
        self.callable: Any = None
        self.generation = 0  # bumped when a disconnect fault closes the channel
        self._task_name = f"{conn.name}.call"

    async def open(self, channel: grpc.aio.Channel) -> grpc.aio.Channel:
        path = self.c.rpc.path
        self.callable = (channel.unary_stream(path) if self.streaming
                         else channel.unary_unary(path))
        return channel

    async def serve(self, handle: Any) -> None:  # pragma: no cover - calls need no serving
        raise NotImplementedError

    async def run(self, channel: grpc.aio.Channel) -> None:
        """Hold the channel until the schedule is done and its calls have ended
        (at most ``load.timeout`` after the last send; later ones are cancelled)."""
        c = self.c
        c.record_event(Kind.CONNECT, status="open")
        try:
            await c.sending_done.wait()
            deadline = time.monotonic() + c.ctx.scenario.load.timeout
            while self.calls and not c.ctx.stop.is_set() and time.monotonic() < deadline:
                await asyncio.wait(list(self.calls), timeout=0.1)
        finally:
            for task in list(self.calls):
                task.cancel()
            await asyncio.gather(*self.calls, return_exceptions=True)
            c.record_event(Kind.DISCONNECT, status="closed")

    # -- sending -------------------------------------------------------------------
    async def send(self, seq: int, cid: str, intended: int, wire: bytes, frame: bytes) -> None:
        c = self.c
        now = time.monotonic_ns()
        if c.channel is None or self.callable is None:
            c.ctx.record((Kind.ERROR, now, c.conn, seq, cid, intended, None, None, c.topic,
                          "not_connected", "not connected when due", None))
            return
        c.inflight.pending[cid] = (seq, intended, now)
        c.ctx.record((SEND_CODE, now, c.conn, seq, cid, intended, now, len(wire), c.topic,
                      None, None, frame))
        self._start(self._stream(cid, wire) if self.streaming else self._unary(cid, wire))

    async def send_copy(self, wire: bytes) -> None:
        if self.c.channel is not None and self.callable is not None:
            self._start(self._copy(wire))

    def _start(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=self._task_name)
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    # -- one call ------------------------------------------------------------------
    async def _unary(self, cid: str, wire: bytes) -> None:
        generation, pending = self.generation, self.c.inflight.pending
        try:
            data = await self.callable(wire, timeout=self.c.deadline, metadata=self.c.metadata)
        except grpc.aio.AioRpcError as exc:
            self._failed(cid, status_of(exc), generation, pending.pop(cid, None))
            return
        except asyncio.CancelledError:
            if not closed_under_us():
                raise
            self._failed(cid, _CLOSED, generation, pending.pop(cid, None))
            return
        payload = self._decoded(cid, data)
        if payload is not GARBAGE:
            self._recv(cid, data, payload, pending.pop(cid, None), status="OK")

    async def _stream(self, cid: str, wire: bytes) -> None:
        generation, pending = self.generation, self.c.inflight.pending
        call = self.callable(wire, timeout=self.c.deadline, metadata=self.c.metadata)
        sent, taken = None, False  # the first reply takes the message off the in-flight list
        try:
            async for data in call:
                payload = self._decoded(cid, data)
                if payload is GARBAGE:
                    continue
                if not taken:
                    sent, taken = pending.pop(cid, None), True
                self._recv(cid, data, payload, sent, status=None)
        except grpc.aio.AioRpcError as exc:
            self._failed(cid, status_of(exc), generation,
                         sent if taken else pending.pop(cid, None))
        except asyncio.CancelledError:
            if not closed_under_us():
                raise
            self._failed(cid, _CLOSED, generation, sent if taken else pending.pop(cid, None))

    async def _copy(self, wire: bytes) -> None:
        """A duplicate: the same request again; its answer is not recorded."""
        with contextlib.suppress(grpc.aio.AioRpcError):
            call = self.callable(wire, timeout=self.c.deadline, metadata=self.c.metadata)
            if self.streaming:
                async for _ in call:
                    pass
            else:
                await call

    # -- rows ----------------------------------------------------------------------
    def _decoded(self, cid: str, data: bytes) -> object:
        """The reply's JSON payload (None when payloads are off), or GARBAGE (recorded)."""
        try:
            return self.c.codec.reply(data)[1]
        except CodecError as exc:
            c = self.c
            c.ctx.record((Kind.ERROR, time.monotonic_ns(), c.conn, None, cid, None, None,
                          len(data), c.topic, "garbage", str(exc), None))
            return GARBAGE

    def _recv(self, cid: str, data: bytes, payload: Any, sent: tuple[int, int, int] | None,
              *, status: str | None) -> None:
        c = self.c
        now = time.monotonic_ns()
        if sent is None:  # it timed out before this reply came
            c.ctx.record((Kind.ERROR, now, c.conn, None, cid, None, None, len(data), c.topic,
                          "late", "reply after its timeout", payload))
            return
        seq, intended, sent_at = sent
        c.ctx.record((RECV_CODE, now, c.conn, seq, cid, intended, sent_at, len(data), c.topic,
                      status, None, payload))

    def _failed(self, cid: str, ended: tuple[str, str], generation: int,
                sent: tuple[int, int, int] | None) -> None:
        """An error status: an ``error`` row, unless the message timed out already."""
        if sent is None:
            return
        c = self.c
        status, error = ended
        if generation != self.generation and status == "CANCELLED":
            status, error = "disconnected", "channel closed (disconnect fault)"
        seq, intended, sent_at = sent
        c.ctx.record((Kind.ERROR, time.monotonic_ns(), c.conn, seq, cid, intended, sent_at,
                      None, c.topic, status, error, None))

    # -- the disconnect fault --------------------------------------------------------
    def abort(self) -> None:
        """Close the channel under its calls; a new one opens after the down time."""
        c = self.c
        channel, c.channel = c.channel, None
        if channel is None:
            return
        self.generation += 1
        self.callable = None
        c.record_event(Kind.DISCONNECT, status="aborted")
        task = asyncio.get_running_loop().create_task(self._reopen(channel),
                                                      name=f"{c.name}.reopen")
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _reopen(self, old: grpc.aio.Channel) -> None:
        c = self.c
        await old.close()
        if c.faults is not None:
            await c.faults.hold_down(c.conn)
        if c.sending_done.is_set():
            return
        try:
            c.channel = await open_channel(c.ctx.url, c.target, c.ctx.scenario.load,
                                           dial=c.ctx.dial)
        except Exception as exc:  # a failed reopen is a row, not a crash
            c.record_event(Kind.ERROR, status="connect_failed", error=str(exc))
            return
        await self.open(c.channel)
        c.record_event(Kind.CONNECT, status="open")
