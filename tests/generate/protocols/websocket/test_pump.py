"""The WebSocket pump below the client: fragments, pings, close codes, the size limit.

The peer is a real websockets server on 127.0.0.1, scripted per test; the
pump is driven directly (no run), so each case is about framing alone. The
memory trim of websockets' parser is tested sans I/O (no socket, no loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from streambench.generate.protocols.websocket.pump import drop_handshake_parser, open_pump

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers = []

    async def start(handler: Handler) -> str:
        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_fragments_arrive_as_one_message_and_the_close_code_is_kept(peer) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(["hel", "lo ", "world"])  # one text message in three frames
        await ws.send([b"\x00\x01", b"\x02"])  # one binary message in two frames
        await ws.ping()
        await ws.close(4001, "room closed")

    received: list[str | bytes] = []
    pump = await open_pump(await peer(handler), received.append)
    await asyncio.wait_for(pump.wait_closed(), 5)
    assert received == ["hello world", b"\x00\x01\x02"]
    assert (pump.close_code, pump.close_reason) == (4001, "room closed")
    assert not pump.closed_by_size


async def test_a_client_close_is_a_clean_close_handshake(peer) -> None:
    seen: list[tuple[int | None, str | None]] = []
    server_done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)
        seen.append((ws.close_code, ws.close_reason))
        server_done.set()

    received: list[str | bytes] = []
    both = asyncio.Event()

    def on_message(message: str | bytes) -> None:
        received.append(message)
        if len(received) == 2:
            both.set()

    pump = await open_pump(await peer(handler), on_message)
    pump.send_many([b'{"cid":"0-1"}', b'{"cid":"0-2"}'])
    await asyncio.wait_for(both.wait(), 5)
    await pump.close()
    await asyncio.wait_for(server_done.wait(), 5)
    assert received == ['{"cid":"0-1"}', '{"cid":"0-2"}']
    assert pump.close_code == 1000
    assert seen == [(1000, "")]


async def test_a_frame_over_the_limit_closes_with_1009_and_is_not_delivered(peer) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("small")
        await ws.send("x" * 5000)
        await ws.wait_closed()

    received: list[str | bytes] = []
    pump = await open_pump(await peer(handler), received.append, max_size=1024)
    await asyncio.wait_for(pump.wait_closed(), 5)
    assert received == ["small"]
    assert pump.closed_by_size


async def test_frames_cut_at_any_byte_arrive_whole_and_a_ping_between_them_is_answered() -> None:
    """The pump cuts data frames from the stream itself: a 101 with the first frame in the
    same segment, frames split inside their header, length and payload, a ping between."""
    from websockets.utils import accept_key

    from streambench.target.broadcast import server_frame

    long_text = "y" * 300  # a 16-bit length
    frames = [server_frame(b"first", text=True), server_frame(long_text.encode(), text=True),
              b"\x89\x02hi",  # a ping: the pump's protocol answers it
              server_frame(b"\x00\x01", text=False), b"\x88\x02\x0f\xa1"]  # close 4001
    pong = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b": ", 1)[1] for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = accept_key(key.decode()).encode()
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                     + frames[0])
        for byte in b"".join(frames[1:]):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        header = await reader.readexactly(2)
        pong.set_result(header[0] & 0x0F)
        await reader.readexactly(4 + (header[1] & 0x7F))  # the pong's mask and payload
        await reader.readexactly(8)  # the client's masked close reply (code 4001)
        writer.close()  # the server ends the TCP connection (RFC 6455 7.1.1)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        received: list[str | bytes] = []
        pump = await open_pump(f"ws://127.0.0.1:{port}/", received.append)
        await asyncio.wait_for(pump.wait_closed(), 5)
    finally:
        server.close()
    assert received == ["first", long_text, b"\x00\x01"]
    assert await pong == 0x0A  # a pong came back before anything else
    assert pump.close_code == 4001


def handshake() -> tuple[ClientProtocol, ServerProtocol, bytes]:
    client, server = ClientProtocol(parse_uri("ws://127.0.0.1/echo")), ServerProtocol()
    client.send_request(client.connect())
    for data in client.data_to_send():
        server.receive_data(data)
    (request,) = server.events_received()
    server.send_response(server.accept(request))
    return client, server, b"".join(server.data_to_send())


def test_the_parser_is_restarted_only_between_frames_and_parses_the_same():
    client, server, response = handshake()
    server.send_text(b"hello")
    data = response + b"".join(server.data_to_send())
    client.receive_data(data[:-3])  # the response, and half a frame
    (event,) = client.events_received()
    assert isinstance(event, Response)
    parser = client.parser
    drop_handshake_parser(client)
    assert client.parser is parser  # mid-frame: left alone

    client.receive_data(data[-3:])
    assert [bytes(e.data) for e in client.events_received()] == [b"hello"]
    drop_handshake_parser(client)
    assert client.parser is not parser  # between frames: restarted

    server.send_text(b"again" * 1000)
    server.send_ping(b"hb")
    client.receive_data(b"".join(server.data_to_send()))
    events = client.events_received()
    assert [e.opcode for e in events] == [Opcode.TEXT, Opcode.PING]
    assert bytes(events[0].data) == b"again" * 1000
    assert isinstance(events[0], Frame)
    server.send_close(1000, "bye")
    client.receive_data(b"".join(server.data_to_send()))
    client.receive_eof()
    assert client.state is State.CLOSED
    assert client.close_code == 1000
