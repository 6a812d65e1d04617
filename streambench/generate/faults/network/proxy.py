"""The TCP fault proxy: accept, connect upstream, move bytes, break them on schedule.

Usage (in an event loop of its own: ``streambench proxy`` runs it in a child
process of the run, so it never shares the load generator's loop)::

    proxy = FaultProxy(NetworkPlan(faults, seed=7), upstream=("127.0.0.1", 8765),
                       emit=rows.append)
    host, port = await proxy.start("127.0.0.1", 0)
    proxy.start_clock(time.monotonic_ns())  # windows count from this zero
    ...
    await proxy.close()  # every window still open ends now; its row is emitted

The clock walks the plan's timeline: when a window opens, its fault is put
on every open connection it picks (and on new ones while it lasts); when it
closes, it is taken off and the ground truth learns what it did. Until the
clock starts (a run sets it to the schedule's zero) nothing is injected.

``refuse`` closes the listening socket for its window (connections are
refused by the kernel, as by a host with nothing listening). A second
socket, bound to the same port with ``SO_REUSEPORT`` and never listening,
holds the port meanwhile, so nobody else can take it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

from streambench.generate.engine.clock import sleep_until
from streambench.generate.faults.network.link import Link, Side
from streambench.generate.faults.network.plan import Change, NetworkPlan
from streambench.generate.faults.network.truth import NetworkTruth
from streambench.scenario.network import RefuseFault

BACKLOG = 4096


class FaultProxy:
    """One listening address forwarding to one upstream, with a plan's faults."""

    def __init__(self, plan: NetworkPlan, *, upstream: tuple[str, int],
                 emit: Callable[[dict[str, Any]], None]) -> None:
        self.plan = plan
        self.upstream = upstream
        self.truth = NetworkTruth(plan.faults, emit=emit,
                                  epoch_offset_ns=time.time_ns() - time.monotonic_ns())
        self.links: set[Link] = set()
        self.accepted = 0  # connections accepted so far (the next one's number)
        self.active: dict[int, int] = {}  # fault index -> its open window
        self.refusing = 0  # refuse windows open
        self.address: tuple[str, int] = ("", 0)
        self._holder: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        self._clock: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- listening ------------------------------------------------------------------
    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (0: any free port); the address actually bound."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._holder = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._holder.bind((host, port))
            self.address = self._holder.getsockname()[:2]
            await self._listen()
        except BaseException:
            self._holder.close()
            raise
        return self.address

    async def _listen(self) -> None:
        sock = socket.socket(self._holder.family if self._holder else socket.AF_INET,
                             socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(self.address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
            self._server = await asyncio.get_running_loop().create_server(self._accept, sock=sock)
        except BaseException:
            sock.close()
            raise

    def _accept(self) -> Side:
        link = Link(self, self.accepted)
        self.accepted += 1
        self.links.add(link)
        for index, window in self.active.items():
            fault = self.plan.faults[index]
            if not isinstance(fault, RefuseFault) and self.plan.picks(index, link.conn):
                link.apply(index, window, fault)
        return link.client

    def connect(self, link: Link) -> None:
        """Start opening ``link``'s upstream connection (its client socket is up)."""
        task = asyncio.get_running_loop().create_task(
            link.connect(*self.upstream), name=f"proxy.connect[{link.conn}]")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, link: Link) -> None:
        self.links.discard(link)

    # -- the clock ------------------------------------------------------------------
    def start_clock(self, zero_mono_ns: int) -> None:
        """Windows count from ``zero_mono_ns`` (monotonic, this host); only the first call
        counts."""
        if self._clock is None:
            self._clock = asyncio.get_running_loop().create_task(
                self._run_clock(zero_mono_ns), name="proxy.clock")

    async def _run_clock(self, zero: int) -> None:
        for change in self.plan.timeline():
            await sleep_until(zero + change.offset_ns)
            if change.opening:
                await self._open(change)
            else:
                await self._close(change)

    async def _open(self, change: Change) -> None:
        index, window, now = change.index, change.window, time.monotonic_ns()
        fault = self.plan.faults[index]
        self.truth.opened(index, window, now)
        if isinstance(fault, RefuseFault):
            self.refusing += 1
            if self.refusing == 1 and self._server is not None:
                self._server.close()
                self._server = None
            return
        picked = [link for link in self.links if self.plan.picks(index, link.conn)]
        if fault.instant:
            for link in picked:
                link.apply(index, window, fault)
            self.truth.closed(index, window, now)
            return
        self.active[index] = window
        for link in picked:
            link.apply(index, window, fault)

    async def _close(self, change: Change) -> None:
        index, window = change.index, change.window
        if isinstance(self.plan.faults[index], RefuseFault):
            self.refusing -= 1
            if self.refusing == 0:
                await self._listen()
        else:
            self.active.pop(index, None)
            for link in list(self.links):
                link.lift(index)
        self.truth.closed(index, window, time.monotonic_ns())

    # -- stopping -------------------------------------------------------------------
    async def close(self) -> None:
        """Stop: no more windows, every connection closed, every row emitted."""
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for link in list(self.links):
            link.finish()
            link.close()
        self.truth.finish(time.monotonic_ns())
        if self._holder is not None:
            self._holder.close()
            self._holder = None
