"""A lean I/O pump around websockets' sans-I/O client protocol, for the hot path.

``websockets.asyncio`` is a fine general client, but a load generator pays
for its generality on every message: one ``write()`` system call per frame,
and a future plus a task wake-up per received message. This pump keeps
websockets' :class:`~websockets.client.ClientProtocol` (the handshake, framing,
masking, ping/pong and closing logic, all sans-I/O) and only moves bytes:

* :meth:`send_many` frames every message that is due at once and hands the
  transport a single buffer: one system call per wake-up, not per message;
* received frames are handed to ``on_message`` synchronously from
  ``data_received``: no futures, no queue, no task switch per message;
* once the connection is open, whole unfragmented text and binary frames
  are cut from the byte stream here (:meth:`_receive_frames`, a few
  integer operations per frame): websockets' generator-based parser cost
  most of a fan-out receiver's core (1,000 members, one delivery each per
  message). Every other frame (ping, pong, close, fragments, one that breaks
  the rules) is handed to the protocol whole, so its parser stays at a frame
  boundary and it keeps every rule it enforces; text is decoded with
  replacement characters instead of failing the connection with 1007.

An idle connection costs little (100,000 of them are held per machine, see
docs/scale.md): no task of its own, futures only while someone waits (for
the close, for a full send buffer to drain), and the handshake response's
headers dropped once checked.

Call order: :func:`open_pump` (connects and completes the handshake), then
:meth:`send_many` / :meth:`drain` any number of times, then :meth:`close`.
:meth:`wait_closed` returns when the TCP connection is gone.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

OnMessage = Callable[[str | bytes], None]
# Linux: bind() picks no port, connect() picks one unique for the whole 4-tuple, so
# every source address gets the full ephemeral range towards each target.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class WebSocketPump(asyncio.Protocol):
    """One client connection: websockets' protocol state, our transport handling."""

    __slots__ = ("_close_waiters", "_fragment_text", "_fragments", "_frames", "_head", "_lost",
                 "_rest", "_write_waiter", "awaiting_pong", "handshake", "max_size", "on_lost",
                 "on_message", "protocol", "transport")

    def __init__(self, protocol: ClientProtocol, on_message: OnMessage) -> None:
        self.protocol = protocol
        self.on_message = on_message
        # called once, from connection_lost, with this pump (set by whoever serves it)
        self.on_lost: Callable[[WebSocketPump], None] | None = None
        self.transport: asyncio.Transport | None = None
        # set while the opening handshake is under way (open_pump), None after
        self.handshake: asyncio.Future[None] | None = asyncio.get_running_loop().create_future()
        self._lost = False
        self._close_waiters: list[asyncio.Future[None]] | None = None
        self._write_waiter: asyncio.Future[None] | None = None  # set while writing is paused
        self._fragments: list[bytes] | None = None
        self._fragment_text = False
        self.awaiting_pong = False  # a ping went out and no pong came back yet (heartbeat)
        self.max_size: int | None = protocol.max_message_size
        self._head = b""  # the handshake's response head, until it is whole
        self._frames = False  # data frames are cut here (after a 101 with no extension)
        self._rest = b""  # the start of a frame not yet whole

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._frames:
            self._receive_frames(data)
            return
        if self.handshake is not None and not self.handshake.done():
            # Up to the end of the response head only: what follows a 101 is frames.
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                return
            self._head, data = b"", head[end + 4:]
            self.protocol.receive_data(head[:end + 4])
            self._events()
            if self.protocol.state is State.OPEN and not self.protocol.extensions:
                self._frames = True
                self._flush()
                if data:
                    self._receive_frames(data)
                return
        self.protocol.receive_data(data)
        self._events()
        self._flush()  # pongs, close frames, and the close of the TCP connection

    def _receive_frames(self, data: bytes) -> None:
        """Cut whole frames from the stream; hand data frames to ``on_message`` and
        every other frame to the protocol (see the module docstring)."""
        buf = self._rest + data if self._rest else data
        pos, size, on_message, to_protocol = 0, len(buf), self.on_message, False
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4]), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10]), 10
            if second & 0x80 or (self.max_size is not None and length > self.max_size):
                self._frames = False  # masked or too big: the protocol fails the connection
                self._rest = b""
                self.protocol.receive_data(buf[pos:])
                self._events()
                self._flush()
                return
            end = pos + head + length
            if end > size:
                break
            opcode = first & 0x0F
            if first & 0xF0 == 0x80 and not self._fragments and opcode in (1, 2):
                payload = buf[pos + head:end]
                on_message(payload.decode("utf-8", "replace") if opcode == 1 else payload)
            else:
                self.protocol.receive_data(buf[pos:end])
                self._events()
                to_protocol = True
                if self.protocol.state is not State.OPEN:  # closing: the protocol decides
                    self._frames = False
                    self._rest = b""
                    if end < size:
                        self.protocol.receive_data(buf[end:])
                        self._events()
                    self._flush()
                    return
            pos = end
        self._rest = buf[pos:] if pos < size else b""
        if to_protocol:
            self._flush()

    def _events(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Response):
                self._on_response(event)

    def _on_response(self, response: Response) -> None:
        handshake = self.handshake
        if handshake is None or handshake.done():
            return
        if self.protocol.handshake_exc is not None:
            handshake.set_exception(self.protocol.handshake_exc)
            return
        # websockets' parser keeps the response alive for the connection's life;
        # its headers are checked by now and are most of an idle connection's memory
        response.headers.clear()
        drop_handshake_parser(self.protocol)
        handshake.set_result(None)

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                data = frame.data
                self.on_message(bytes(data).decode("utf-8", "replace")
                                if opcode is Opcode.TEXT else bytes(data))
            else:
                self._fragments = [bytes(frame.data)]
                self._fragment_text = opcode is Opcode.TEXT
        elif opcode is Opcode.PONG:
            self.awaiting_pong = False
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                whole = b"".join(self._fragments)
                self._fragments = None
                self.on_message(whole.decode("utf-8", "replace") if self._fragment_text
                                else whole)

    def eof_received(self) -> bool | None:
        # A refusal without Content-Length ends at EOF: only now is its response whole.
        self._to_protocol()
        self.protocol.receive_eof()
        self._events()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._to_protocol()
        self.protocol.receive_eof()  # idempotent; ends the protocol's parser
        self._events()
        self._lost = True
        handshake = self.handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(
                ConnectionError(str(exc) if exc else "connection closed during the handshake"))
        for waiter in self._close_waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._close_waiters = None
        self.resume_writing()
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost(self)

    def _to_protocol(self) -> None:
        """Bytes held here (a partial head or frame) go to the protocol, which judges them
        at the end of the stream."""
        held, self._head, self._rest, self._frames = self._head + self._rest, b"", b"", False
        if held and self.protocol.state is not State.CLOSED:
            self.protocol.receive_data(held)

    def pause_writing(self) -> None:
        if self._write_waiter is None:
            self._write_waiter = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- sending ---------------------------------------------------------------
    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        chunks = self.protocol.data_to_send()
        if not chunks:
            return
        if chunks[-1] == b"":  # the protocol asks for the TCP connection to end
            data = b"".join(chunks[:-1])
            if data:
                transport.write(data)
            transport.close()
            return
        # When a close is expected, the peer answers our close frame and the protocol
        # then asks for EOF (b"" above); close() aborts if it never does.
        transport.write(b"".join(chunks) if len(chunks) > 1 else chunks[0])

    def send_many(self, frames: Iterable[bytes], *, text: bool = True) -> None:
        """Frame and write every message in one system call; raise if not open."""
        protocol = self.protocol
        if protocol.state is not State.OPEN:
            raise protocol.close_exc
        send = protocol.send_text if text else protocol.send_binary
        for data in frames:
            send(data)
        self._flush()

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        waiter = self._write_waiter
        if waiter is not None:
            await asyncio.shield(waiter)  # several senders may wait on the same pause

    def ping(self, data: bytes = b"") -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_ping(data)
            self.awaiting_pong = True
            self._flush()

    def closed_future(self) -> asyncio.Future[None]:
        """A future done once the TCP connection is gone, for waits that race the close
        with something else; hand it back to :meth:`forget` when done with it."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._lost:
            waiter.set_result(None)
        else:
            if self._close_waiters is None:
                self._close_waiters = []
            self._close_waiters.append(waiter)
        return waiter

    def forget(self, waiter: asyncio.Future[None]) -> None:
        """Stop tracking a future from :meth:`closed_future` (the wait is over)."""
        if self._close_waiters is not None and waiter in self._close_waiters:
            self._close_waiters.remove(waiter)

    async def wait_closed(self) -> None:
        """Return once the TCP connection is gone (cancelling this wait changes nothing)."""
        waiter = self.closed_future()
        try:
            await waiter
        finally:
            self.forget(waiter)

    async def close(self, code: int = 1000, reason: str = "", *, wait: float = 1.0) -> None:
        """Close politely; abort the TCP connection if the peer does not answer in ``wait`` s."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        try:
            async with asyncio.timeout(wait):
                await self.wait_closed()
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()
            await self.wait_closed()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_closed(self) -> bool:
        """True once the TCP connection is gone."""
        return self._lost

    @property
    def open(self) -> bool:
        return self.protocol.state is State.OPEN

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        return self.protocol.close_reason

    @property
    def closed_by_size(self) -> bool:
        """True when the connection ended because a frame exceeded ``max_size``."""
        sent = self.protocol.close_sent
        return sent is not None and sent.code == 1009


def drop_handshake_parser(protocol: ClientProtocol) -> None:
    """Restart websockets' frame parser without the handshake's frame, if it is idle.

    ``ClientProtocol.parse()`` reads the handshake response, then delegates to
    ``Protocol.parse()`` for the frames (``yield from``), so its generator
    frame, holding the response, lives as long as the connection. When the
    frame parser waits between frames (in ``StreamReader.at_eof`` with nothing
    buffered), a fresh ``Protocol.parse()`` is the same state without it:
    about 400 bytes less per connection. Any other shape (another websockets
    version, a frame half read) leaves the parser alone.
    """
    handshake = protocol.parser
    frames = getattr(handshake, "gi_yieldfrom", None)
    waiting = getattr(frames, "gi_yieldfrom", None)
    if (getattr(frames, "gi_code", None) is not Protocol.parse.__code__
            or getattr(waiting, "gi_code", None) is not StreamReader.at_eof.__code__
            or protocol.reader.buffer or protocol.reader.eof):
        return
    parser = Protocol.parse(protocol)
    next(parser)  # runs to the same wait: StreamReader.at_eof()
    protocol.parser = parser


# one parsed URL for every connection to it (each protocol keeps the one it was given)
_parse_uri = functools.lru_cache(maxsize=64)(parse_uri)


async def open_pump(url: str, on_message: OnMessage, *, headers: Mapping[str, str] | None = None,
                    max_size: int | None = 1 << 20, subprotocols: Sequence[str] = (),
                    source_address: str | None = None, dial: tuple[str, int] | None = None
                    ) -> WebSocketPump:
    """Connect and complete the opening handshake; the caller bounds it with a timeout.

    ``source_address`` binds the connection's local end to that address (the
    port is left to the kernel, per 4-tuple). ``dial`` is where the TCP
    connection goes (the fault proxy) when it is not the URL's address; the URL
    still names the host (Host header, TLS server name).

    Raises ``OSError`` when the TCP connection fails, and websockets'
    ``InvalidHandshake`` family (``InvalidStatus`` for an HTTP refusal) when
    the upgrade fails, so callers translate them in one place.
    """
    uri = _parse_uri(url)
    protocol = ClientProtocol(uri, max_size=max_size,
                              subprotocols=[Subprotocol(p) for p in subprotocols] or None)
    request = protocol.connect()
    for name, value in (headers or {}).items():
        request.headers[name] = value
    protocol.send_request(request)
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if uri.secure else None
    host, port = dial or (uri.host, uri.port)
    server_hostname = uri.host if context else None
    if source_address is None:
        _, pump = await loop.create_connection(lambda: WebSocketPump(protocol, on_message),
                                               host, port, ssl=context,
                                               server_hostname=server_hostname)
    else:
        sock = await connect_from(source_address, host, port)
        _, pump = await loop.create_connection(lambda: WebSocketPump(protocol, on_message),
                                               sock=sock, ssl=context,
                                               server_hostname=server_hostname)
    pump._flush()
    try:
        assert pump.handshake is not None
        await pump.handshake
    except (InvalidHandshake, ConnectionError, ConnectionClosed):
        pump.abort()
        raise
    finally:
        pump.handshake = None
    return pump


async def connect_from(source_address: str, host: str, port: int) -> socket.socket:
    """A TCP socket from ``source_address`` (any port) connected to ``host:port``."""
    family = socket.AF_INET6 if ipaddress.ip_address(source_address).version == 6 \
        else socket.AF_INET
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{host} has no address reachable from {source_address}")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source_address, 0))
        await loop.sock_connect(sock, infos[0][4])
    except BaseException:
        sock.close()
        raise
    return sock
