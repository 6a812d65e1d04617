"""A lean I/O pump around websockets' sans-I/O client protocol, for the hot path.

``websockets.asyncio`` is a fine general client, but a load generator pays
for its generality on every message: one ``write()`` system call per frame,
and a future plus a task wake-up per received message. This pump keeps
websockets' :class:`~websockets.client.ClientProtocol` (the handshake, framing,
masking, ping/pong and closing logic, all sans-I/O) and only moves bytes:

* :meth:`send_many` frames every message that is due at once and hands the
  transport a single buffer: one system call per wake-up, not per message;
* received frames are handed to ``on_message`` synchronously from
  ``data_received``: no futures, no queue, no task switch per message.

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

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._events()
        self._flush()  # pongs, close frames, and the close of the TCP connection

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
        self.protocol.receive_eof()
        self._events()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()  # idempotent; ends the protocol's parser
        self._events()
        if not self.handshake.done():
            self.handshake.set_exception(
                ConnectionError(str(exc) if exc else "connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._writable.set()

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
