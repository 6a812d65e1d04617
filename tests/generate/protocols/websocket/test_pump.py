"""The pump's memory trim of websockets' parser, sans I/O: no socket, no event loop."""

from __future__ import annotations

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from streambench.generate.protocols.websocket.pump import drop_handshake_parser


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
