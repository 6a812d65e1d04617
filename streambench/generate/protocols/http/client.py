"""The HTTP client: request/response over a keep-alive pool, open-model senders.

A "connection" is a client with its own ``aiohttp`` session and a pool of up
to :data:`POOL_SIZE` keep-alive sockets. Each scheduled message is one
request (``target.method`` to ``target.url``, ``target.headers``, the message
body as JSON) issued at its intended time whether or not earlier ones have
answered. Issued requests wait in a FIFO for one of up to ``POOL_SIZE``
workers (one per socket, started on demand, gone when idle), and that wait
counts in their latency (measured from the intended time, as always). Workers
rather than a task per request: a backlog then costs a deque entry, not a
task and a connector waiter each.

Rows: a ``send`` when the request is issued; a ``recv`` with ``status`` =
the HTTP status for a 2xx answer (after the whole body is read); an
``error`` row with ``status`` = the HTTP status for anything else (the error
column says ``HTTP 503 Service Unavailable``); ``disconnected`` when the
connection failed under the request; ``timeout`` from the sweeper when no
answer came within ``load.timeout``. A ``connect`` row when the pool opens and
a ``disconnect`` row when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from streambench.capture.schema import SEND_CODE, Kind
from streambench.errors import ConfigError, TargetUnreachable
from streambench.generate.engine.clock import sleep_until
from streambench.generate.engine.context import Inflight, RunContext
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.protocols.base import (
    EventRecorder,
    dial_address,
    dialled,
    os_reason,
    target_as,
)
from streambench.generate.protocols.http.lean import BodyTooBig, LeanSession
from streambench.scenario.model import HttpTarget

POOL_SIZE = 100  # keep-alive sockets per connection
_YIELD_EVERY = 64
_PAYLOAD_LIMIT = 4096
_CONTENT_TYPE = {"Content-Type": "application/json"}


def status_error(status: int, reason: str | None) -> str:
    return f"HTTP {status} {reason or ''}".rstrip()


class HttpConnection(EventRecorder):
    """One client: a session, its keep-alive pool and the requests in flight on it."""

    def __init__(self, ctx: RunContext, conn: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.name = f"http[{conn}]"
        parts = urlsplit(ctx.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"target.url: not an HTTP URL: {ctx.url!r}")
        self.host, self.port = parts.hostname, parts.port or (443 if parts.scheme == "https"
                                                               else 80)
        self.topic = parts.path or "/"
        self.path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = target_as(ctx, HttpTarget)
        self.max_body = target.max_message_bytes
        self.method = target.method.upper()
        engine = target.http_engine
        if engine == "lean" and parts.scheme != "http":
            raise ConfigError("target.http_engine: lean speaks plain http:// only; use "
                              "aiohttp (or auto) for https://")
        if engine == "lean" and self.method == "HEAD":
            raise ConfigError("target.http_engine: lean does not send HEAD requests; use "
                              "aiohttp (or auto)")
        self.lean = engine == "lean" or (engine == "auto" and parts.scheme == "http"
                                         and self.method != "HEAD")
        self.dialled = dialled(ctx.url, ctx.dial)  # through the fault proxy, if any
        self.url = URL(self.dialled.url)  # parsed once, not per request
        self.inflight = Inflight(conn, ctx.record)
        self.session: aiohttp.ClientSession | LeanSession | None = None
        self.sending_done = asyncio.Event()
        self.faults: FaultInjector | None = None
        self._requests: set[asyncio.Task[None]] = set()  # workers and re-openers
        self._queue: deque[tuple[str, bytes, bool]] = deque()  # (cid, body, is a copy)
        self._workers = 0

    # -- the pool ----------------------------------------------------------------
    async def open(self) -> aiohttp.ClientSession | LeanSession:
        """Check the target accepts TCP connections, then open the pool."""
        timeout = self.ctx.scenario.target.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(
                    *dial_address(self.ctx, self.host, self.port))
        except TimeoutError as exc:
            raise TargetUnreachable(self.ctx.url, f"no answer in {timeout:g}s") from exc
        except OSError as exc:
            raise TargetUnreachable(self.ctx.url, os_reason(exc)) from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return self._new_session()

    def _new_session(self) -> aiohttp.ClientSession | LeanSession:
        headers = with_content_type(self.ctx.headers)
        if self.lean:
            try:
                return LeanSession(host=self.host, port=self.port, path=self.path_and_query,
                                   method=self.method, headers=headers, size=POOL_SIZE,
                                   timeout=2 * self.ctx.scenario.load.timeout + 1,
                                   max_body=self.max_body, dial=self.ctx.dial)
            except ValueError as exc:
                raise ConfigError(f"target: {exc} (the lean HTTP engine writes them as they "
                                  "are; percent-encode the URL)") from None
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, limit_per_host=POOL_SIZE,
                                         ttl_dns_cache=None)
        # One timer per request: a bound so that no request outlives the run. The
        # measured timeout is the sweeper's (load.timeout from the intended time).
        timeout = aiohttp.ClientTimeout(total=2 * self.ctx.scenario.load.timeout + 1)
        headers = {**self.dialled.headers, **headers}  # Host: the target, via the proxy
        return aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout,
                                     auto_decompress=False)

    async def run(self, session: aiohttp.ClientSession | LeanSession) -> None:
        """Hold the pool open until the schedule is done and every request has ended."""
        self.session = session
        self.record_event(Kind.CONNECT, status="open")
        try:
            await self.sending_done.wait()
            while self._requests and not self.ctx.stop.is_set():
                await asyncio.wait(list(self._requests), timeout=0.1)
        finally:
            for task in list(self._requests):
                task.cancel()
            current, self.session = self.session, None
            if current is not None:
                await current.close()
            self.record_event(Kind.DISCONNECT, status="closed")

    # -- sending -----------------------------------------------------------------
    async def send_all(self) -> None:
        """Start every scheduled request at its intended time (open model)."""
        ctx = self.ctx
        message = ctx.conversation.framer(ctx.conn_offset + self.conn).message
        start = ctx.start_mono
        faults = self.faults
        seq = 0
        try:
            for offset in ctx.schedule(self.conn):
                intended = start + offset
                now = time.monotonic_ns()
                if intended > now:
                    await sleep_until(intended)
                elif seq % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                seq += 1
                _, cid, data = message(seq)
                if faults is not None:
                    await faults.send(self, seq=seq, cid=cid, intended=intended, data=data)
                else:
                    self._start(seq, cid, intended, data)
            if faults is not None:
                await faults.finish(self)
        finally:
            self.sending_done.set()

    def _start(self, seq: int, cid: str, intended: int, data: bytes, *,
               copy: bool = False) -> None:
        now = time.monotonic_ns()
        session = self.session
        if session is None:
            if not copy:
                self.ctx.record((Kind.ERROR, now, self.conn, seq, cid, intended, None, None,
                                 self.topic, "not_connected", "not connected when due", None))
            return
        if not copy:
            self.inflight.pending[cid] = (seq, intended, now)
            self.ctx.record((SEND_CODE, now, self.conn, seq, cid, intended, now, len(data),
                             self.topic, None, None, data))
        self._queue.append((cid, data, copy))
        if self._workers < POOL_SIZE:
            self._workers += 1
            task = asyncio.get_running_loop().create_task(self._work(),
                                                          name=f"{self.name}.request")
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

    async def _work(self) -> None:
        """Take issued requests off the FIFO until it is empty."""
        queue = self._queue
        try:
            while queue:
                cid, data, copy = queue.popleft()
                session = self.session
                if session is None:  # the pool was cut under the queue (disconnect fault)
                    if not copy:
                        self._resolve(cid, Kind.ERROR, "disconnected", "connection closed")
                    continue
                await self._request(session, cid, data, copy=copy)
        finally:
            self._workers -= 1

    async def _request(self, session: aiohttp.ClientSession | LeanSession, cid: str,
                       data: bytes, *,
                       copy: bool) -> None:
        try:
            if isinstance(session, LeanSession):
                status, reason, body = await session.request(data)
            else:
                async with session.request(self.method, self.url, data=data,
                                           server_hostname=self.dialled.server_hostname
                                           ) as response:
                    body = await read_bounded(response, self.max_body)
                    status, reason = response.status, response.reason or ""
        except TimeoutError:  # first: TimeoutError is an OSError, and aiohttp's are both
            return  # the sweeper has recorded the timeout already
        except BodyTooBig as exc:  # as for a WebSocket frame: a too_big row, the socket dropped
            self.record_event(Kind.ERROR, status="too_big", error=str(exc))
            if not copy:
                self._resolve(cid, Kind.ERROR, "disconnected", str(exc))
            return
        except (aiohttp.ClientError, OSError) as exc:
            if not copy:
                self._resolve(cid, Kind.ERROR, "disconnected", _describe(exc))
            return
        if copy:
            return
        text = body.decode("utf-8", "replace")
        if 200 <= status < 300:
            self._resolve(cid, Kind.RECV, str(status), None, payload=text, nbytes=len(body))
        else:
            self._resolve(cid, Kind.ERROR, str(status), status_error(status, reason),
                          payload=text[:_PAYLOAD_LIMIT], nbytes=len(body))

    def _resolve(self, cid: str, kind: Kind, status: str, error: str | None, *,
                 payload: str | None = None, nbytes: int | None = None) -> None:
        now = time.monotonic_ns()
        sent = self.inflight.pending.pop(cid, None)
        if sent is None:  # it timed out before the answer came
            self.ctx.record((Kind.ERROR, now, self.conn, None, cid, None, None, nbytes,
                             self.topic, "late", "reply after its timeout", payload))
            return
        seq, intended, sent_at = sent
        self.ctx.record((kind, now, self.conn, seq, cid, intended, sent_at, nbytes, self.topic,
                         status, error, payload))

    # -- the fault injector's seam (streambench.generate.faults.inject.Faultable) -------
    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        self._start(seq, cid, intended, data)

    async def send_copy(self, data: bytes) -> None:
        self._start(0, "", 0, data, copy=True)

    def abort(self) -> None:
        """Close the pool's sockets under the requests in flight; reopen after the down time."""
        session, self.session = self.session, None
        if session is None:
            return
        self.record_event(Kind.DISCONNECT, status="aborted")
        task = asyncio.get_running_loop().create_task(self._reopen(session),
                                                      name=f"{self.name}.reopen")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _reopen(self, old: aiohttp.ClientSession | LeanSession) -> None:
        await old.close()
        if self.faults is not None:
            await self.faults.hold_down(self.conn)
        if not self.sending_done.is_set():
            self.session = self._new_session()
            self.record_event(Kind.CONNECT, status="open")



def with_content_type(headers: Mapping[str, str]) -> dict[str, str]:
    """The scenario's headers, with a JSON Content-Type unless they give one (in any case)."""
    if any(name.lower() == "content-type" for name in headers):
        return dict(headers)
    return {**_CONTENT_TYPE, **headers}


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or :class:`BodyTooBig` as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            response.close()
            raise BodyTooBig(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def record_fallback(clients: list[Any], reason: str) -> None:
    """An ``error`` row with status ``fallback`` on each client: why the run is on HTTP."""
    for client in clients:
        client.record_event(Kind.ERROR, status="fallback", error=f"{reason}; falling back to HTTP")
