"""What the run engine hands every protocol client, and the bookkeeping they share.

A protocol client only sends, receives and records rows (see
:mod:`streambench.capture.writer` for the row layout). Everything a client
needs to know about the run is in :class:`RunContext`; the per-connection
state that matches replies to requests is :class:`Inflight`.

Error rows carry a ``status`` naming their class, so the summary can
reconcile ``sent = received + errors + timeouts``:

===================  ==========================================  ===========
status               meaning                                     resolves a
                                                                 sent message
===================  ==========================================  ===========
``error_reply``      the server answered with an error            yes
``4xx``/``5xx``      an HTTP response that is not a success       yes
``disconnected``     the connection dropped before the reply      yes
``not_connected``    due to be sent while disconnected (no send)  no (never sent)
``send_failed``      the transport refused the message            no (never sent)
``garbage``          a reply that is not JSON / has no cid         no
``unmatched``        a reply whose cid matches nothing in flight   no
``late``             a reply after its message timed out           no
``too_big``          a frame larger than max_message_bytes         no
===================  ==========================================  ===========
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from streambench.capture.schema import Kind
from streambench.errors import ConfigError, TargetError
from streambench.scenario.model import Scenario

log = logging.getLogger("streambench.connection")

MESSAGE_ERRORS = ("error_reply", "disconnected")
HTTP_STATUS_ERROR = r"^\d{3}$"  # an HTTP response that is not 2xx: its status code
SEND_ERRORS = ("not_connected", "send_failed")
PROTOCOL_ERRORS = ("garbage", "unmatched", "late", "too_big")

Row = tuple[Any, ...]


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

    @property
    def timeout_ns(self) -> int:
        return int(self.scenario.load.timeout * 1e9)

    @property
    def end_mono(self) -> int:
        """When the schedule ends (the drain for replies comes after)."""
        return self.start_mono + int(self.scenario.load.total_duration * 1e9)


class Inflight:
    """Messages sent on one connection and not yet answered, oldest first.

    ``pending`` maps cid -> (seq, intended_mono, sent_mono); insertion order is
    send order, which is intended order, so expiry only ever looks at the head.
    """

    __slots__ = ("conn", "late", "pending", "record")

    def __init__(self, conn: int, record: Callable[[Row], None]) -> None:
        self.conn = conn
        self.record = record
        self.pending: dict[str, tuple[int, int, int]] = {}
        self.late: set[str] = set()  # cids that timed out, to recognise late replies

    def expire(self, now: int, timeout_ns: int, topic: str | None) -> int:
        """Record a timeout for every message whose intended time + timeout has passed."""
        expired = 0
        pending = self.pending
        while pending:
            cid, (seq, intended, sent) = next(iter(pending.items()))
            if intended + timeout_ns > now:
                break
            del pending[cid]
            self.record((Kind.TIMEOUT, now, self.conn, seq, cid, intended, sent, None,
                         topic, None, None, None))
            if len(self.late) < 100_000:
                self.late.add(cid)
            expired += 1
        return expired

    def fail_all(self, now: int, status: str, error: str, topic: str | None) -> None:
        """Resolve everything in flight as errors (the connection is gone)."""
        for cid, (seq, intended, sent) in self.pending.items():
            self.record((Kind.ERROR, now, self.conn, seq, cid, intended, sent, None, topic,
                         status, error, None))
        self.pending.clear()


async def sleep_until(deadline_mono: int) -> None:
    """Sleep until a monotonic deadline, never waking before it.

    uvloop rounds timers to whole milliseconds, so one sleep can end up to
    half a millisecond early; a message must never go out before its
    intended time (its latency would read low, even negative).
    """
    while (delay := deadline_mono - time.monotonic_ns()) > 0:  # noqa: ASYNC110 (a clock)
        await asyncio.sleep(delay / 1e9)


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


def backoff(initial: float, maximum: float, factor: float) -> Iterator[float]:
    """Reconnect delays: initial, initial*factor, ... capped at maximum."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


async def serve_reconnecting(client: Any, handle: Any) -> None:
    """Serve an open connection; when it is lost, reconnect with backoff and serve again.

    Shared by the persistent-connection clients (WebSocket, MQTT): ``client``
    has ``ctx``, ``conn``, ``faults``, ``sending_done``, ``inflight``,
    ``open()``, ``_serve(handle)`` (returns when the connection is gone) and
    ``_record(...)``. Ends when the run stops, or once the schedule is done
    and nothing is in flight, or when ``target.reconnect.attempts`` failed
    attempts in a row are used up. Failed attempts are recorded as
    ``connect_failed`` errors, never raised: the first connection is opened
    by the engine, where failing is an answer.
    """
    ctx = client.ctx
    reconnect = ctx.scenario.target.reconnect

    def finished() -> bool:
        return ctx.stop.is_set() or (client.sending_done.is_set()
                                     and not client.inflight.pending)

    while True:
        await client._serve(handle)
        if finished():
            return
        if client.faults is not None:
            await client.faults.hold_down(client.conn)
        delays = backoff(reconnect.initial, reconnect.max, reconnect.factor)
        attempts = 0
        while True:
            await asyncio.sleep(next(delays))
            try:
                handle = await client.open()
                break
            except (TargetError, ConfigError) as exc:
                client._record(Kind.ERROR, status="connect_failed", error=str(exc))
                log.info("reconnect failed: %s", exc, extra={"conn": client.conn})
                attempts += 1
                if reconnect.attempts is not None and attempts >= reconnect.attempts:
                    return
            if finished():
                return
