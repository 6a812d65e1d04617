"""What the run engine hands every protocol client, and the bookkeeping they share.

A protocol client only sends, receives and records rows (see
:mod:`streambench.capture.writer` for the row layout). Everything a client
needs to know about the run is in :class:`RunContext`; the per-connection
state that matches replies to requests is :class:`Inflight`.

Error rows carry a ``status`` from :mod:`streambench.capture.status`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from streambench.capture.schema import Kind
from streambench.capture.writer import Row
from streambench.generate.engine.conversation import Plan, compile_plan
from streambench.generate.engine.fanout import Ledger
from streambench.generate.engine.pushes import PushLog, PushReader
from streambench.scenario.model import Scenario


@dataclass
class RunContext:
    """The run as a protocol client sees it. Times are ``time.monotonic_ns()``."""

    scenario: Scenario
    record: Callable[[Row], None]
    start_mono: int  # schedule offset 0
    frame: Callable[[int, str, int], bytes]  # (message number, cid, seq) -> wire bytes
    url: str  # resolved target URL (embedded target already started)
    headers: dict[str, str]  # secrets resolved; never logged
    stop: asyncio.Event  # set when the run must end now (signal, stop button, error)
    schedule: Callable[[int], Iterator[int]]  # conn -> intended offsets (ns)
    conn_offset: int = 0  # first global connection index of this worker
    connections: int = 1  # connections this process drives
    topics: dict[int, str] = field(default_factory=dict)
    # Where clients open TCP connections when the run goes through the fault proxy; the
    # URL still names the target (Host header, TLS server name). None: the URL's address.
    dial: tuple[str, int] | None = None
    plan: Plan | None = None  # compiled from the scenario if not given
    # local addresses connections are opened from (resolved, checked); () for the default
    source_addresses: tuple[str, ...] = ()
    fanout: Ledger | None = None  # the fan-out messages in flight (expect: fanout kinds)
    # what a protocol's connections share in a run, made by the first (the gRPC codec)
    shared: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.plan is None:
            self.plan = compile_plan(self.scenario)
        self.push_reader = PushReader.build(self.scenario.stream)

    def push_log(self, conn: int) -> PushLog:
        """Connection ``conn``'s push bookkeeping (one per connection, kept over reconnects)."""
        return PushLog(self.push_reader, self.record, conn=conn, epoch_offset=epoch_offset_ns)

    def source_address(self, conn: int) -> str | None:
        """Where connection ``conn`` of this process is opened from (round robin, global)."""
        addresses = self.source_addresses
        return addresses[(self.conn_offset + conn) % len(addresses)] if addresses else None

    @property
    def conversation(self) -> Plan:
        """The compiled plan (set by ``__post_init__``)."""
        assert self.plan is not None
        return self.plan

    @property
    def drained(self) -> bool:
        """No fan-out message can still reach a member (always, without fan-out)."""
        return self.fanout is None or self.fanout.drained

    @property
    def timeout_ns(self) -> int:
        return int(self.scenario.load.timeout * 1e9)

    @property
    def end_mono(self) -> int:
        """When the schedule ends (the drain for replies comes after)."""
        return self.start_mono + int(self.scenario.load.total_duration * 1e9)


_NO_CIDS: frozenset[str] = frozenset()


class Flag:
    """A one-way flag with ``asyncio.Event``'s ``set``/``is_set``/``wait``, for many copies.

    An Event costs about 900 bytes (its waiter deque); a connection holds
    several, and 100,000 connections are held per machine. A Flag makes a
    future only while someone waits. Unlike an Event it is never cleared.
    """

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class Inflight:
    """Messages sent on one connection and not yet answered, oldest first.

    ``pending`` maps cid -> (seq, intended_mono, sent_mono); insertion order is
    send order, which is intended order, so expiry only ever looks at the head.
    """

    __slots__ = ("conn", "late", "pending", "record", "streams")

    def __init__(self, conn: int, record: Callable[[Row], None]) -> None:
        self.conn = conn
        self.record = record
        self.pending: dict[str, tuple[int, int, int]] = {}
        # cids that timed out, to recognise late replies, and ids of open streams (expect:
        # stream) until their end: an empty frozenset until the first one, so the many
        # connections that never need them carry no set
        self.late: set[str] | frozenset[str] = _NO_CIDS
        self.streams: set[str] | frozenset[str] = _NO_CIDS

    def expire(self, now: int, timeout_ns: int, topic: str | None) -> int:
        """Record a timeout for every message whose intended time + timeout has passed."""
        expired = 0
        pending = self.pending
        while pending:
            cid, (seq, intended, sent) = next(iter(pending.items()))
            if intended + timeout_ns > now:
                break
            del pending[cid]
            self.close_stream(cid)
            self.record((Kind.TIMEOUT, now, self.conn, seq, cid, intended, sent, None,
                         topic, None, None, None))
            late = self.late
            if not isinstance(late, set):
                self.late = late = set()
            if len(late) < 100_000:
                late.add(cid)
            expired += 1
        return expired

    def open_stream(self, cid: str) -> None:
        """Message ``cid`` is answered by a stream of replies until its end."""
        if not isinstance(self.streams, set):
            self.streams = set()
        self.streams.add(cid)

    def close_stream(self, cid: str) -> None:
        streams = self.streams
        if isinstance(streams, set):
            streams.discard(cid)

    def fail_all(self, now: int, status: str, error: str, topic: str | None) -> None:
        """Resolve everything in flight as errors (the connection is gone)."""
        for cid, (seq, intended, sent) in self.pending.items():
            self.record((Kind.ERROR, now, self.conn, seq, cid, intended, sent, None, topic,
                         status, error, None))
        self.pending.clear()


async def wait_until(deadline_mono: int, stop: asyncio.Event) -> bool:
    """Sleep until a monotonic deadline; False if ``stop`` was set first."""
    delay = (deadline_mono - time.monotonic_ns()) / 1e9
    if delay <= 0:
        return not stop.is_set()
    try:
        async with asyncio.timeout(delay):
            await stop.wait()
    except TimeoutError:
        return True
    return False


def epoch_offset_ns() -> int:
    """What to add to ``time.monotonic_ns()`` now to get epoch nanoseconds."""
    return time.time_ns() - time.monotonic_ns()


def backoff(initial: float, maximum: float, factor: float) -> Iterator[float]:
    """Reconnect delays: initial, initial*factor, ... capped at maximum."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)
