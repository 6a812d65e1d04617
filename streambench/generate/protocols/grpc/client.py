"""The gRPC client: one channel per connection, open-model senders, rows per reply.

:class:`GrpcConnection` is what the engine drives (the
:class:`~streambench.generate.protocols.base.Connection` seam). It owns the
channel, the codec and the schedule; what a message *is* depends on the kind
of method, and is the job of a pump:

* unary and server-streaming methods: each message is one call
  (:class:`~streambench.generate.protocols.grpc.calls.CallPump`);
* bidirectional-streaming methods: one long-lived stream per connection, each
  message one write on it, replies matched by ``message.cid_field``
  (:class:`~streambench.generate.protocols.grpc.stream.StreamPump`).

Either way a message is sent at its intended time whatever came back, and its
latency runs from that time. Metadata (``${SECRETS}`` resolved here, kept in
memory only) and the deadline go with every call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import grpc
import orjson

from streambench.capture.schema import Kind
from streambench.errors import ConfigError
from streambench.generate.engine.clock import sleep_until
from streambench.generate.engine.context import Inflight, RunContext
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.protocols.base import EventRecorder, serve_reconnecting
from streambench.generate.protocols.grpc.channel import open_channel
from streambench.generate.protocols.grpc.codec import CodecError, GrpcCodec
from streambench.scenario.model import GrpcTarget
from streambench.scenario.proto import Method
from streambench.scenario.secrets import resolve

_YIELD_EVERY = 64  # a sender behind schedule still lets the receivers run


class Pump(Protocol):
    """How messages travel for one kind of method (calls, or writes on a stream)."""

    async def open(self, channel: grpc.aio.Channel) -> Any: ...

    async def run(self, handle: Any) -> None: ...

    async def serve(self, handle: Any) -> None: ...

    async def send(self, seq: int, cid: str, intended: int, wire: bytes, frame: bytes
                   ) -> None: ...

    async def send_copy(self, wire: bytes) -> None: ...

    def abort(self) -> None: ...


def _codec(ctx: RunContext, rpc: Method) -> GrpcCodec:
    """The run's codec: the bodies of ``ctx.frame`` (connection 0's view, the same for all)."""
    message = ctx.scenario.message
    cid_field, seq_field = message.cid_field or "cid", message.seq_field or "seq"

    def body(i: int) -> dict[str, Any]:
        """Body ``i`` as the JSON frames have it, the correlation fields left out."""
        doc: dict[str, Any] = orjson.loads(ctx.frame(i, "", 0))
        doc.pop(cid_field, None)
        doc.pop(seq_field, None)
        return doc

    try:
        return GrpcCodec(rpc, body, pool=ctx.conversation.bodies, cid_field=cid_field,
                         seq_field=seq_field, reply_id=ctx.scenario.replies.id,
                         payloads=ctx.scenario.capture.payloads)
    except CodecError as exc:
        raise ConfigError(str(exc)) from None


class GrpcConnection(EventRecorder):
    """One connection: its channel, its sender, and the pump for its kind of method."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        target = ctx.scenario.target
        if not isinstance(target, GrpcTarget):
            raise ConfigError("target.protocol: the gRPC client needs a grpc target")
        self.ctx = ctx
        self.conn = conn
        self.name = f"grpc[{conn}]"
        self.target = target
        self.rpc = target.rpc()
        self.topic = self.rpc.path
        codec = ctx.shared.get("grpc.codec")
        if codec is None:  # one per run: bodies are encoded once, not per connection
            codec = ctx.shared["grpc.codec"] = _codec(ctx, self.rpc)
        self.codec: GrpcCodec = codec
        self.metadata = tuple((key, resolve(value, field=f"target.metadata.{key}"))
                              for key, value in target.metadata.items())
        self.deadline = target.deadline
        self.inflight = Inflight(conn, ctx.record)
        self.channel: grpc.aio.Channel | None = None
        self.sending_done = asyncio.Event()
        self.faults: FaultInjector | None = None
        self._last: tuple[bytes, bytes | None] = (b"", None)  # (frame, wire) of the last send
        self.pump: Pump = self._pump()

    def _pump(self) -> Pump:
        if self.rpc.kind == "bidi_stream":
            from streambench.generate.protocols.grpc.stream import StreamPump

            return StreamPump(self)
        from streambench.generate.protocols.grpc.calls import CallPump

        return CallPump(self)

    # -- connecting ----------------------------------------------------------------
    async def open(self) -> Any:
        """Open the channel if there is none, then what the pump needs on it."""
        if self.channel is None:
            self.channel = await open_channel(self.ctx.url, self.target, self.ctx.scenario.load,
                                              dial=self.ctx.dial)
        return await self.pump.open(self.channel)

    async def run(self, handle: Any) -> None:
        """Serve until the run is done (bidi: reconnecting lost streams with backoff)."""
        try:
            if self.rpc.kind == "bidi_stream":
                await serve_reconnecting(self, handle)
            else:
                await self.pump.run(handle)
        finally:
            channel, self.channel = self.channel, None
            if channel is not None:
                await channel.close()

    async def serve(self, handle: Any) -> None:
        """Serve one open stream until it ends (:func:`serve_reconnecting` calls this)."""
        await self.pump.serve(handle)

    # -- sending -------------------------------------------------------------------
    async def send_all(self) -> None:
        """Send every scheduled message at its intended time (open model)."""
        ctx = self.ctx
        frame, request, send = ctx.frame, self.codec.request, self.pump.send
        start = ctx.start_mono
        global_conn = ctx.conn_offset + self.conn
        faults = self.faults
        seq = 0
        try:
            for offset in ctx.schedule(self.conn):
                intended = start + offset
                if intended > time.monotonic_ns():
                    await sleep_until(intended)
                elif seq % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                seq += 1
                cid = f"{global_conn}-{seq}"
                data = frame(seq, cid, seq)
                if faults is None:
                    await send(seq, cid, intended, request(seq, cid, seq), data)
                else:  # the injector hands the frame back through send_message
                    await faults.send(self, seq=seq, cid=cid, intended=intended, data=data)
            if faults is not None:
                await faults.finish(self)
        finally:
            self.sending_done.set()

    def wire_of(self, seq: int, cid: str, data: bytes) -> bytes | None:
        """The wire bytes of message ``seq``'s JSON frame as a fault left it; None (and a
        ``send_failed`` row) when the fault made it unencodable for the request type."""
        original = self.codec.request(seq, cid, seq)
        if data == self.ctx.frame(seq, cid, seq):
            return original
        try:
            return self.codec.from_json(data, original=original)
        except CodecError as exc:
            self.ctx.record((Kind.ERROR, time.monotonic_ns(), self.conn, seq, cid, None, None,
                             None, self.topic, "send_failed",
                             f"cannot encode as {self.rpc.request.DESCRIPTOR.name}: {exc}",
                             data))
            return None

    # -- the fault injector's seam (streambench.generate.faults.inject.Faultable) -------
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        """Send one message now and record it, as the send loop does."""
        wire = self.wire_of(seq, cid, data)
        self._last = (data, wire)
        if wire is not None:
            await self.pump.send(seq, cid, intended, wire, data)

    async def send_copy(self, data: bytes) -> None:
        """Send the message just sent again (a duplicate: another call, or another write)."""
        sent, wire = self._last
        if wire is not None and sent is data:
            await self.pump.send_copy(wire)

    def abort(self) -> None:
        """Close the channel abruptly (its TCP connection goes); the pump reconnects."""
        self.pump.abort()
