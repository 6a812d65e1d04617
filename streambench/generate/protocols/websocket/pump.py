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

Call order: :func:`open_pump` (connects and completes the handshake), then
:meth:`send_many` / :meth:`drain` any number of times, then :meth:`close`.
``closed`` is a future done when the TCP connection is gone.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

OnMessage = Callable[[str | bytes], None]


class WebSocketPump(asyncio.Protocol):
    """One client connection: websockets' protocol state, our transport handling."""

    def __init__(self, protocol: ClientProtocol, on_message: OnMessage) -> None:
        self.protocol = protocol
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._writable = asyncio.Event()
        self._writable.set()
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self.pongs = 0  # pong frames received (the heartbeat's evidence of life)
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
        if not self.handshake.done():
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
        protocol = self.protocol
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Response) and not self.handshake.done():
                if protocol.handshake_exc is not None:
                    self.handshake.set_exception(protocol.handshake_exc)
                else:
                    self.handshake.set_result(None)

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
            self.pongs += 1
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self.on_message(data.decode("utf-8", "replace") if self._fragment_text else data)

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
        if not self.handshake.done():
            self.handshake.set_exception(
                ConnectionError(str(exc) if exc else "connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._writable.set()

    def _to_protocol(self) -> None:
        """Bytes held here (a partial head or frame) go to the protocol, which judges them
        at the end of the stream."""
        held, self._head, self._rest, self._frames = self._head + self._rest, b"", b"", False
        if held and self.protocol.state is not State.CLOSED:
            self.protocol.receive_data(held)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

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
        if not self._writable.is_set():
            await self._writable.wait()

    def ping(self, data: bytes = b"") -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.send_ping(data)
            self._flush()

    async def close(self, code: int = 1000, reason: str = "", *, wait: float = 1.0) -> None:
        """Close politely; abort the TCP connection if the peer does not answer in ``wait`` s."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        try:
            async with asyncio.timeout(wait):
                await asyncio.shield(self.closed)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()
            await asyncio.shield(self.closed)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

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


async def open_pump(url: str, on_message: OnMessage, *, headers: Mapping[str, str] | None = None,
                    max_size: int | None = 1 << 20, subprotocols: Sequence[str] = (),
                    dial: tuple[str, int] | None = None) -> WebSocketPump:
    """Connect and complete the opening handshake; the caller bounds it with a timeout.

    ``dial`` is where the TCP connection goes (the fault proxy) when it is not
    the URL's address; the URL still names the host (Host header, TLS server name).

    Raises ``OSError`` when the TCP connection fails, and websockets'
    ``InvalidHandshake`` family (``InvalidStatus`` for an HTTP refusal) when
    the upgrade fails, so callers translate them in one place.
    """
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=max_size,
                              subprotocols=[Subprotocol(p) for p in subprotocols] or None)
    request = protocol.connect()
    for name, value in (headers or {}).items():
        request.headers[name] = value
    protocol.send_request(request)
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if uri.secure else None
    host, port = dial or (uri.host, uri.port)
    _, pump = await loop.create_connection(lambda: WebSocketPump(protocol, on_message),
                                           host, port, ssl=context,
                                           server_hostname=uri.host if context else None)
    pump._flush()
    try:
        await pump.handshake
    except (InvalidHandshake, ConnectionError, ConnectionClosed):
        pump.abort()
        raise
    return pump
