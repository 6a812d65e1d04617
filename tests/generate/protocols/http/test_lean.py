"""The lean HTTP engine below the client: its parser and pool against raw sockets.

Each test starts a plain asyncio server on 127.0.0.1 that answers with bytes
written by hand, so the framing cases a framework would hide are exercised:
keep-alive, chunked, close-delimited bodies, bodies over the limit, garbage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from streambench.generate.protocols.http.lean import BodyTooBig, LeanSession

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # False: close after


class RawServer:
    """Reads each request (head and Content-Length body) and answers with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[tuple[RawServer, LeanSession]]]]:
    started: list[tuple[RawServer, LeanSession]] = []

    async def start(answer: Answer, *, size: int = 2, max_body: int = 1 << 20,
                    headers: dict[str, str] | None = None) -> tuple[RawServer, LeanSession]:
        server = RawServer(answer)
        port = await server.start()
        session = LeanSession(host="127.0.0.1", port=port, path="/echo", method="POST",
                              headers=headers or {"Content-Type": "application/json"},
                              size=size, timeout=5.0, max_body=max_body)
        started.append((server, session))
        return server, session

    yield start
    for server, session in started:
        await session.close()
        assert server.server is not None
        server.server.close()


def echo(*, close: bool = False) -> Answer:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = request.split(b"\r\n\r\n", 1)[1]
        extra = b"Connection: close\r\n" if close else b""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"
                     % (len(body), extra, body))
        await writer.drain()
        return not close

    return answer


async def test_keep_alive_reuses_one_socket_and_writes_one_content_type(serve) -> None:
    server, session = await serve(echo())
    for i in range(5):
        assert await session.request(b'{"n":%d}' % i) == (200, "OK", b'{"n":%d}' % i)
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.count(b"content-type:") == 1
    assert head.startswith(b"post /echo http/1.1\r\n")


async def test_the_pool_never_opens_more_than_its_size(serve) -> None:
    async def slow(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)  # the server's own latency: requests overlap
        return await echo()(request, writer)

    server, session = await serve(slow, size=2)
    results = await asyncio.gather(*(session.request(b"x") for _ in range(6)))
    assert [r[0] for r in results] == [200] * 6
    assert server.most_open == 2


async def test_a_chunked_body_is_reassembled(serve) -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        await writer.drain()
        return True

    _, session = await serve(chunked)
    assert await session.request(b"x") == (200, "OK", b"abcdefg")
    assert await session.request(b"y") == (200, "OK", b"abcdefg")


async def test_a_close_delimited_body_ends_at_the_close(serve) -> None:
    async def until_close(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe whole body")
        await writer.drain()
        return False  # close: that is where the body ends

    server, session = await serve(until_close)
    assert await session.request(b"x") == (200, "OK", b"the whole body")
    assert await session.request(b"y") == (200, "OK", b"the whole body")  # a new socket
    assert server.connections == 2


async def test_a_body_cut_short_is_an_error_not_a_reply(serve) -> None:
    async def cut(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        return False

    _, session = await serve(cut)
    with pytest.raises(ConnectionError, match="connection closed"):
        await session.request(b"x")


async def test_an_endless_body_stops_at_the_limit(serve) -> None:
    sent = 0

    async def endless(request: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
        for _ in range(10_000):  # 160 MiB if nobody stopped reading: bounded all the same
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()
        return False

    _, session = await serve(endless, max_body=64 << 10)
    with pytest.raises(BodyTooBig, match="larger than 65536 bytes"):
        await session.request(b"x")
    assert sent < 8 << 20  # the client dropped the socket: the server could not go on


async def test_garbage_is_a_malformed_response(serve) -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        return True

    _, session = await serve(garbage)
    with pytest.raises(ConnectionError, match="malformed HTTP response"):
        await session.request(b"x")


@pytest.mark.parametrize(("headers", "method"), [
    ({"X-Evil": "a\r\nX-Injected: 1"}, "POST"),
    ({"X-Evil": "caf\u00e9"}, "POST"),
    ({}, "POST /other HTTP/1.1\r\nX: y"),
])
def test_cr_lf_or_non_ascii_never_reach_the_wire(headers: dict[str, str], method: str) -> None:
    with pytest.raises(ValueError, match="CR, LF, NUL or non-ASCII"):
        LeanSession(host="127.0.0.1", port=9, path="/", method=method, headers=headers,
                    size=1, timeout=1.0)
