"""Server-Sent Events: consume streams the server pushes, record each event as a push.

``target.protocol: sse`` opens ``load.connections`` streams (``GET
target.url`` with ``Accept: text/event-stream``) and listens for the
schedule's duration. Nothing is sent; every event is a ``push`` row
(:mod:`streambench.generate.engine.pushes`):

* ``intended_ns``: the arrival of the previous event on the connection, so
  ``ts - intended_ns`` is the *inter-arrival gap* (null for the first event);
  events that waited unread in the buffer while the run started (the first
  stream is opened before the schedule's zero) have neither gap nor staleness:
  when they arrived is not known;
* ``sent_ns`` and ``seq``: the server's timestamp and sequence number, read
  from the event's ``data:`` as JSON where the scenario's ``stream`` section
  says (null without it);
* ``status``: the event's ``id:`` field, if it has one; ``topic``: its
  ``event:`` name, else the URL path; ``payload``: its ``data:`` lines joined
  by newlines. ``latency_ms`` stays null: nothing was sent.

A stream the server ends is a ``disconnect`` row and is reopened (with the
scenario's backoff) while the schedule lasts; a refused reopen is a
``connect_failed`` error row. A non-2xx answer at start is a TargetError.
For ``url: embedded`` the built-in target's ``/sse`` pushes
``load.rate / load.connections`` events/s per stream. Of the faults only
``disconnect`` applies (there are no messages to delay or drop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp

from streambench.capture.schema import Kind
from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.engine.context import Inflight, RunContext, backoff, wait_until
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.protocols.base import EventRecorder, dialled, os_reason, target_as
from streambench.scenario.model import SseTarget

_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}


Event = tuple[str, str | None, str | None]  # (data, last event id, event name)


class EventTooBig(ValueError):
    """An event (or one line of it) larger than ``target.max_message_bytes``;
    ``events`` are the complete ones that came before it in the same chunk."""

    def __init__(self, size: int, limit: int, events: list[Event] | None = None) -> None:
        super().__init__(f"event larger than {limit} bytes")
        self.size = size
        self.events = events or []


class EventStreamParser:
    """``text/event-stream`` bytes in, ``(data, id, event name)`` out; no I/O.

    Follows the WHATWG parsing rules that matter to a load test: lines end in
    LF, CRLF or CR; ``data:`` lines of one event are joined by newlines; a
    blank line dispatches; ``:`` starts a comment; the last ``id:`` persists
    across events. Nothing larger than ``max_bytes`` is ever buffered: a
    longer line or event raises :class:`EventTooBig`.
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tail = b""  # an unfinished line
        self._data: list[str] = []
        self._size = 0  # bytes of the event so far
        self._name: str | None = None
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._tail + chunk if self._tail else chunk
        held = b""
        if buffer.endswith(b"\r"):  # maybe the first half of a CRLF: decide with the next chunk
            buffer, held = buffer[:-1], b"\r"
        lines = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._tail = lines.pop() + held
        events: list[Event] = []
        try:
            for line in lines:
                event = self._line(line)
                if event is not None:
                    events.append(event)
        except EventTooBig as exc:
            raise EventTooBig(exc.size, self.max_bytes, events) from None
        if len(self._tail) > self.max_bytes:
            raise EventTooBig(len(self._tail), self.max_bytes, events)
        return events

    def _line(self, raw: bytes) -> Event | None:
        if not raw:
            data, self._data, self._size = self._data, [], 0
            name, self._name = self._name, None
            return ("\n".join(data), self.last_id, name) if data else None
        if raw.startswith(b":"):
            return None  # a comment (keep-alive)
        self._size += len(raw)
        if self._size > self.max_bytes:
            raise EventTooBig(self._size, self.max_bytes)
        field, _, value = raw.decode("utf-8", "replace").partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self.last_id = value
        elif field == "event":
            self._name = value
        return None


class SseConnection(EventRecorder):
    """One event stream: its session, its reader and its pushes."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.name = f"sse[{conn}]"
        parts = urlsplit(ctx.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"target.url: not an HTTP URL: {ctx.url!r}")
        self.topic = parts.path or "/"
        self.inflight = Inflight(conn, ctx.record)  # stays empty: nothing is sent
        self.faults: FaultInjector | None = None
        self.response: aiohttp.ClientResponse | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pushes = ctx.push_log(conn)

    async def open(self) -> aiohttp.ClientResponse:
        """Request the stream; raise TargetUnreachable / TargetError on failure."""
        timeout = self.ctx.scenario.target.connect_timeout
        if self.session is None:
            self.session = aiohttp.ClientSession(headers=self.ctx.headers or None,
                                                 timeout=aiohttp.ClientTimeout(total=None))
        try:
            response = await self._get(self.session, timeout)
        except BaseException:
            await self._close_session()
            raise
        if not 200 <= response.status < 300:
            response.release()
            await self._close_session()
            raise TargetError(f"target {self.ctx.url} refused the event stream: HTTP "
                              f"{response.status}")
        return response

    async def _get(self, session: aiohttp.ClientSession, within_s: float
                   ) -> aiohttp.ClientResponse:
        try:
            async with asyncio.timeout(within_s):
                via = dialled(self.ctx.url, self.ctx.dial)  # the fault proxy, if any
                return await session.get(via.url, headers={**_HEADERS, **via.headers},
                                         server_hostname=via.server_hostname)
        except TimeoutError as exc:
            raise TargetUnreachable(self.ctx.url, f"no answer in {within_s:g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TargetUnreachable(self.ctx.url, os_reason(exc)) from exc
        except aiohttp.ClientError as exc:
            raise TargetError(f"target {self.ctx.url}: {exc}") from exc

    async def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    async def run(self, response: aiohttp.ClientResponse) -> None:
        """Read streams until the schedule's end, reopening a stream the server ends."""
        reconnect = target_as(self.ctx, SseTarget).reconnect
        try:
            while True:
                await self.serve(response)
                if self._done():
                    return
                if self.faults is not None:
                    await self.faults.hold_down(self.conn)
                opened = await self._reopen(backoff(reconnect.initial, reconnect.max,
                                                    reconnect.factor), reconnect.attempts)
                if opened is None:
                    return
                response = opened
        finally:
            await self._close_session()

    async def _reopen(self, delays: Iterator[float], attempts: int | None
                      ) -> aiohttp.ClientResponse | None:
        failures = 0
        while not self._done():
            await asyncio.sleep(next(delays))
            if self._done():
                return None
            try:
                return await self.open()
            except (TargetError, ConfigError) as exc:
                self.record_event(Kind.ERROR, status="connect_failed", error=str(exc))
                failures += 1
                if attempts is not None and failures >= attempts:
                    return None
        return None

    def _done(self) -> bool:
        return self.ctx.stop.is_set() or time.monotonic_ns() >= self.ctx.end_mono

    async def serve(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.record_event(Kind.CONNECT, status=str(response.status))
        reason = "stream ended"
        try:
            # Bounded by the run's end whoever opened this stream: a stream reopened
            # just as the run ended must not be read forever.
            async with asyncio.timeout(max(self.ctx.end_mono - time.monotonic_ns(), 0) / 1e9):
                await self._read(response)
        except TimeoutError:
            reason = "run ended"
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"stream broken: {type(exc).__name__}"
        finally:
            self.response = None
            response.release()
            self.record_event(Kind.DISCONNECT, error=reason)

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        parser = EventStreamParser(max_bytes=self.ctx.scenario.target.max_message_bytes)
        # What came while nobody read (a stream opened before the schedule's zero):
        # its arrival times are unknown, so those pushes get no gap and no staleness.
        backlog = response.content.read_nowait()
        if backlog and not self._feed(parser, backlog, known=False):
            return
        async for chunk in response.content.iter_any():
            if not self._feed(parser, chunk, known=True):
                return  # the stream is closed; it is reopened like one the server ended

    def _feed(self, parser: EventStreamParser, chunk: bytes, *, known: bool) -> bool:
        """Record the chunk's events; False (after an error row) when one is too big."""
        try:
            for payload, event_id, name in parser.feed(chunk):
                self._event(payload, event_id, name, known=known)
        except EventTooBig as exc:
            for payload, event_id, name in exc.events:
                self._event(payload, event_id, name, known=known)
            self.ctx.record((Kind.ERROR, time.monotonic_ns(), self.conn, None, None, None,
                             None, exc.size, self.topic, "too_big", str(exc), None))
            return False
        return True

    def _event(self, payload: str, event_id: str | None, name: str | None, *,
               known: bool) -> None:
        self.pushes.push(payload, time.monotonic_ns(), stream=None, topic=name or self.topic,
                         status=event_id, arrival_known=known)

    async def send_all(self) -> None:
        """Nothing to send: listen until the schedule's end, then close the stream."""
        await wait_until(self.ctx.end_mono, self.ctx.stop)
        response = self.response
        if response is not None:
            response.close()

    # -- the fault injector's seam (only disconnect applies) ----------------------
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        return None

    async def send_copy(self, data: bytes) -> None:
        return None

    def abort(self) -> None:
        response = self.response
        if response is not None:
            response.close()

