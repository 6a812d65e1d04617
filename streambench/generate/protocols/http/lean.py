"""A lean HTTP/1.1 keep-alive pool for the hot path (``target.http_engine: lean``).

aiohttp is a complete client, and a load generator pays for that on every
request (request and response objects, header multidicts, a timer handle,
several coroutine frames). This pool does only what a load test of one
endpoint needs: plain HTTP/1.1 over ``size`` keep-alive sockets (no TLS, no
redirects, no cookies), one request in flight per socket, responses parsed by
httptools' C parser (llhttp, the parser of Node.js) in ``data_received``.

Failures surface as ``ConnectionError`` (refused, reset, closed, garbage
from the server), which the HTTP client records like aiohttp's errors; a
body over ``max_body`` bytes is :class:`BodyTooBig` (the socket is dropped:
nothing bigger is buffered). A response without Content-Length or chunked
encoding ends when the server closes the connection (RFC 9112 section 6.3).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

import httptools

Response = tuple[int, str, bytes]  # (status, reason, body)


class BodyTooBig(ConnectionError):
    """A response body over the session's ``max_body`` bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


class _Socket(asyncio.Protocol):
    """One keep-alive connection: write a request, parse its response."""

    def __init__(self, max_body: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.max_body = max_body
        self.reason = ""
        self.body: list[bytes] = []
        self.size = 0
        self.framed = False  # the response says where it ends (length or chunked)
        self.headers_done = False
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self.headers_done and not self.framed:
            self.on_message_complete()  # a close-delimited body ends here
            return
        self._fail(ConnectionError(f"connection closed: {exc}" if exc else "connection closed"))

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        status = self.parser.get_status_code()
        if status in (204, 304) or 100 <= status < 200:
            self.framed = True  # no body at all

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self._fail(BodyTooBig(self.max_body))
            self.abort()
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body = b"".join(self.body)
        status, reason = self.parser.get_status_code(), self.reason
        self.body, self.reason, self.size = [], "", 0
        self.framed = self.headers_done = False
        if not self.parser.should_keep_alive():
            self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_result((status, reason, body))

    # use
    def exchange(self, request: bytes) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        return waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class LeanSession:
    """``size`` keep-alive sockets to one endpoint; :meth:`request` sends one body."""

    def __init__(self, *, host: str, port: int, path: str, method: str,
                 headers: Mapping[str, str], size: int, timeout: float,
                 max_body: int = 1 << 20, dial: tuple[str, int] | None = None) -> None:
        """``method`` and ``headers`` must be valid HTTP (the scenario model checks them:
        no CR or LF, ASCII values): they are written as they are. ``dial``: where sockets
        connect (the fault proxy) when not ``host:port``, which the Host header names."""
        self.host, self.port, self.size, self.timeout = host, port, size, timeout
        self.max_body = max_body
        self.address = dial or (host, port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}",
                 *(f"{name}: {value}" for name, value in headers.items())]
        if any(not line.isascii() or any(c in line for c in "\r\n\0") for line in lines):
            raise ValueError("an HTTP method, path or header holds CR, LF, NUL or non-ASCII")
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("ascii")
        self._idle: list[_Socket] = []
        self._sockets: set[_Socket] = set()
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._busy = 0
        self._closed = False

    async def request(self, body: bytes) -> Response:
        """``(status, reason, body)``; ConnectionError/OSError when the exchange fails."""
        sock = await self._acquire()
        try:
            async with asyncio.timeout(self.timeout):
                result = await sock.exchange(b"%s%d\r\n\r\n%s" % (self._head, len(body), body))
        except BaseException:
            sock.abort()
            self._sockets.discard(sock)
            self._release(None)
            raise
        self._release(sock)
        return result

    async def _acquire(self) -> _Socket:
        while True:
            if self._closed:
                raise ConnectionError("session closed")
            while self._idle:
                sock = self._idle.pop()
                if not sock.closed:
                    self._busy += 1
                    return sock
                self._sockets.discard(sock)
            if self._busy < self.size:
                self._busy += 1
                try:
                    _, sock = await asyncio.get_running_loop().create_connection(
                        lambda: _Socket(self.max_body), *self.address)
                except BaseException:
                    self._release(None)
                    raise
                self._sockets.add(sock)
                return sock
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            await waiter

    def _release(self, sock: _Socket | None) -> None:
        self._busy -= 1
        if sock is not None and not sock.closed and not self._closed:
            self._idle.append(sock)
        elif sock is not None:
            self._sockets.discard(sock)
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def close(self) -> None:
        """Abort every socket: requests in flight fail with ConnectionError."""
        self._closed = True
        for sock in self._sockets:
            sock.abort()
        self._sockets.clear()
        self._idle.clear()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
