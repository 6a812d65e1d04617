"""One proxied connection: two sockets, two directions, bytes moved between them.

A :class:`Link` pairs the client's socket (accepted by the proxy) with the
upstream socket (opened to the target). Each direction is a :class:`Pipe`:
with no fault on it, ``data_received`` writes straight to the other socket
(the fast path: one attribute test per chunk); with faults it hands the bytes
to its :class:`~.shape.Shaper` and writes what comes out when it is due, from
one timer. Flow control is TCP's: a pipe stops reading its source while the
destination's buffer is full, or while it holds more than ``HIGH_WATER``
bytes back (a squeezed link pushes back on the sender, as a real one does).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Literal, cast

from streambench.generate.faults.network.shape import (
    Bandwidth,
    Close,
    CloseAfter,
    Effect,
    Item,
    Latency,
    Shaper,
    Slicer,
)
from streambench.scenario.network import (
    BandwidthFault,
    BlackholeFault,
    CloseAfterFault,
    ConnectionFault,
    LatencyNetFault,
    ResetFault,
    SlicerFault,
    SlowCloseFault,
)

if TYPE_CHECKING:
    from streambench.generate.faults.network.proxy import FaultProxy

HIGH_WATER = 1 << 20  # bytes held back in one direction before its source is paused
LOW_WATER = 1 << 18
SLACK_NS = 500_000  # release what is due this soon: uvloop's timers tick in milliseconds
_LINGER_RST = struct.pack("ii", 1, 0)


def reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()  # type: ignore[attr-defined]


class Side(asyncio.Protocol):
    """One socket of a link; ``out`` reads from it, ``into`` writes to it."""

    def __init__(self, link: Link, name: str) -> None:
        self.link = link
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.out: Pipe
        self.into: Pipe
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.link.made(self)

    def data_received(self, data: bytes) -> None:
        out = self.out
        if out.fast:
            out.write(data)
        else:
            out.shaped(data)

    def eof_received(self) -> bool:
        self.link.ended(self)
        return True  # half-closed: the other direction may go on

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.link.lost(self, exc)

    def pause_writing(self) -> None:
        self.into.blocked(True)

    def resume_writing(self) -> None:
        self.into.blocked(False)


class Pipe:
    """One direction of a link: from ``src`` to ``dst``, through its shaper."""

    def __init__(self, src: Side, dst: Side, direction: Literal["upstream", "downstream"]
                 ) -> None:
        self.src, self.dst, self.direction = src, dst, direction
        self.shaper = Shaper()
        self.queue: deque[Item] = deque()
        self.queued = 0  # bytes in the queue
        self.timer: asyncio.TimerHandle | None = None
        self.fast = False
        self.write = self._drop
        self.wired = self.ended = self.dead = False
        self._blocked = self._full = self._paused = False

    def wire(self) -> None:
        """Both sockets are up: start moving bytes."""
        assert self.dst.transport is not None
        self.write, self.wired = self.dst.transport.write, True
        self.refresh()
        self.release()

    def refresh(self) -> None:
        self.fast = (self.wired and not self.queue and self.shaper.plain
                     and not self.ended and not self.dead)

    @staticmethod
    def _drop(data: bytes) -> None:
        return None

    def shaped(self, data: bytes) -> None:
        """The slow path: bytes through the shaper, out when due."""
        if self.dead or self.ended:
            return
        self.enqueue(self.shaper.feed(time.monotonic_ns(), data))

    def end(self, how: Literal["eof", "reset"]) -> None:
        """The source has ended (EOF, or lost): pass the close on, behind the bytes."""
        if self.ended or self.dead:
            return
        items = self.shaper.close(time.monotonic_ns(), how)
        self.ended = True
        self.refresh()
        if items:
            self.enqueue(items)

    def enqueue(self, items: list[Item]) -> None:
        for item in items:
            self.queue.append(item)
            if not isinstance(item[1], Close):
                self.queued += len(item[1])
        self.fast = False
        if self.queued > HIGH_WATER and not self._full:
            self._full = True
            self._reading()
        if self.timer is None:
            self.release()

    def release(self) -> None:
        """Write out everything due; set the timer for the rest."""
        self.timer = None
        if not self.wired or self.dead:
            return
        now = time.monotonic_ns()
        chunks: list[bytes] = []
        queue = self.queue
        while queue and queue[0][0] <= now + SLACK_NS:
            what = queue.popleft()[1]
            if isinstance(what, Close):
                self._flush(chunks)
                self.src.link.closed_by(self, what)
                continue
            chunks.append(what)
            self.queued -= len(what)
        self._flush(chunks)
        if queue:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later((queue[0][0] - now) / 1e9, self.release)
        if self._full and self.queued < LOW_WATER:
            self._full = False
            self._reading()
        self.refresh()

    def _flush(self, chunks: list[bytes]) -> None:
        if chunks:
            self.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            chunks.clear()

    def blocked(self, blocked: bool) -> None:
        """The destination's buffer filled (True) or drained (False)."""
        self._blocked = blocked
        self._reading()

    def _reading(self) -> None:
        pause = self._blocked or self._full
        transport = self.src.transport
        if pause == self._paused or transport is None or transport.is_closing():
            return
        self._paused = pause
        if pause:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def kill(self) -> None:
        """The destination is gone: nothing more is written."""
        self.dead, self.fast, self.write = True, False, self._drop
        self.queue.clear()
        self.queued = 0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def go_dark(self) -> Effect:
        """Blackhole: what is held back vanishes, and so does everything after."""
        self.queue.clear()
        self.queued = 0
        effect = self.shaper.go_dark()
        self.refresh()
        return effect


class Link:
    """A client connection and its upstream connection, with the faults applied to them."""

    def __init__(self, proxy: FaultProxy, conn: int) -> None:
        self.proxy, self.conn = proxy, conn
        self.client, self.upstream = Side(self, "client"), Side(self, "upstream")
        self.up = Pipe(self.client, self.upstream, "upstream")
        self.down = Pipe(self.upstream, self.client, "downstream")
        self.client.out = self.upstream.into = self.up
        self.upstream.out = self.client.into = self.down
        self.faults: dict[int, int] = {}  # fault index -> its window applied here
        self.dark: dict[int, tuple[int, int]] = {}  # fault index -> (window, since ns)
        self.done = self.connecting = False

    # -- connecting ---------------------------------------------------------------
    def made(self, side: Side) -> None:
        if side is self.client:
            assert side.transport is not None
            side.transport.pause_reading()  # until the upstream connection is up
            self.proxy.connect(self)

    async def connect(self, host: str, port: int) -> None:
        """Open the upstream connection; a refusal there resets the client."""
        loop = asyncio.get_running_loop()
        self.connecting = True
        try:
            await loop.create_connection(lambda: self.upstream, host, port)
        except OSError:
            self.connecting = False
            if self.client.closed:
                self.finish()
            else:
                reset(self.client.transport)  # lost() then finishes the link
            return
        self.connecting = False
        if self.client.closed:
            reset(self.upstream.transport)
            return
        self.up.wire()
        self.down.wire()
        if self.client.transport is not None and not self.client.transport.is_closing():
            self.client.transport.resume_reading()

    # -- faults -------------------------------------------------------------------
    def pipes(self, fault: ConnectionFault) -> list[Pipe]:
        return {"upstream": [self.up], "downstream": [self.down]}.get(
            fault.direction, [self.up, self.down])

    def apply(self, index: int, window: int, fault: ConnectionFault) -> None:
        """Put fault ``index`` (in its window ``window``) on this connection."""
        plan, truth, now = self.proxy.plan, self.proxy.truth, time.monotonic_ns()
        if isinstance(fault, ResetFault):
            self.reset(fault.direction)
            truth.instant(index, window, self.conn, now)
            return
        if isinstance(fault, BlackholeFault):
            if index not in self.dark:
                for pipe in self.pipes(fault):
                    pipe.go_dark()
                self.dark[index] = (window, now)
                truth.begin(index, window, self.conn)
            return
        self.faults[index] = window
        for pipe in self.pipes(fault):
            if isinstance(fault, LatencyNetFault):
                pipe.shaper.add(Latency(index, window, delays=partial(
                    plan.delay_ns, index, self.conn)))
            elif isinstance(fault, BandwidthFault):
                pipe.shaper.add(Bandwidth(index, window, rate=fault.rate))
            elif isinstance(fault, SlicerFault):
                pipe.shaper.add(Slicer(index, window, sizes=partial(
                    plan.slice_sizes, index, self.conn), delay_ns=round(fault.delay * 1e9)))
            elif isinstance(fault, CloseAfterFault):
                pipe.shaper.add(CloseAfter(index, window, limit=fault.limit))
            elif isinstance(fault, SlowCloseFault):
                pipe.shaper.slow[index] = (round(fault.delay * 1e9), Effect())
            pipe.refresh()

    def lift(self, index: int) -> None:
        """Take fault ``index`` off (its window closed); report what it did."""
        window = self.faults.pop(index, None)
        if window is None:
            return
        for pipe in (self.up, self.down):
            effect = pipe.shaper.remove(index)
            if effect is not None:
                self.proxy.truth.effect(index, window, self.conn, effect)
            pipe.refresh()

    def reset(self, direction: str) -> None:
        """RST the side(s) ``direction`` names; the other side gets a plain close."""
        rst = {"downstream": (self.client,), "upstream": (self.upstream,)}.get(
            direction, (self.client, self.upstream))
        self.up.kill()
        self.down.kill()
        for side in (self.client, self.upstream):
            if side in rst:
                reset(side.transport)
            elif side.transport is not None:
                side.transport.close()

    # -- closing ------------------------------------------------------------------
    def closed_by(self, pipe: Pipe, close: Close) -> None:
        """A close came out of ``pipe`` (due now): pass it to the destination."""
        transport = pipe.dst.transport
        if close.how == "cut":  # close_after: the whole connection goes, politely
            self.up.kill()
            self.down.kill()
            for side in (self.client, self.upstream):
                if side.transport is not None:
                    side.transport.close()
        elif close.how == "reset":
            reset(transport)
        elif transport is not None and not transport.is_closing():
            if pipe.src.closed or not transport.can_write_eof():
                transport.close()  # the source is gone for good, not just half-closed
            else:
                transport.write_eof()
        self.maybe_done()

    def maybe_done(self) -> None:
        """Both directions ended (each side closed, and what was queued is out, or was
        swallowed by a dark direction): nothing more can flow, so close both sockets."""
        if self.up.ended and self.down.ended and not self.up.queue and not self.down.queue:
            self.close()

    def ended(self, side: Side) -> None:
        """``side`` sent EOF: pass it on. A client closing a dark connection is done: the
        target would never hear of it, so the proxy lets both sockets go."""
        side.out.end("eof")
        if side is self.client and self.up.shaper.dark is not None:
            self.close()
        self.maybe_done()

    def lost(self, side: Side, exc: Exception | None) -> None:
        """``side``'s socket is gone: stop writing to it, pass its close on."""
        side.into.kill()
        side.out.end("reset" if exc is not None else "eof")
        if side is self.client and self.up.shaper.dark is not None:
            reset(self.upstream.transport)  # the target never hears of it; we do not leak
        upstream_gone = self.upstream.closed or (self.upstream.transport is None
                                                 and not self.connecting)
        if self.client.closed and upstream_gone:
            self.finish()
        else:
            self.maybe_done()

    def finish(self) -> None:
        """Both sockets are closed (or the proxy stops): report every effect, once."""
        if self.done:
            return
        self.done = True
        now = time.monotonic_ns()
        for index in list(self.faults):
            self.lift(index)
        for index, (window, since) in self.dark.items():
            swallowed = sum(p.shaper.dark.bytes for p in (self.up, self.down)
                            if p.shaper.dark is not None)
            self.proxy.truth.end(index, window, self.conn, start=since, end=now,
                                 swallowed=swallowed)
        self.dark.clear()
        self.up.kill()
        self.down.kill()
        self.proxy.forget(self)

    def close(self) -> None:
        """The proxy stops: close both sockets."""
        for side in (self.client, self.upstream):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()
