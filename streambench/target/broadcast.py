"""The broadcast mode: a WebSocket at ``/broadcast/<room>`` relays every message it
receives to every *other* member of its room, as a chat server's room does.

It makes fan-out measurable without an outside server (``url: embedded`` with
an ``expect: fanout`` kind connects here, the room from ``fanout.group``). A
message is framed once and the same bytes are written to each member's
transport: a server frame is not masked, so every copy is identical, and one
``write`` per member is the least a relay can do. Fault knobs do not apply here.
"""

from __future__ import annotations

import struct

from aiohttp import WSMsgType, web

from streambench.target.state import TargetState

PATH = "/broadcast/"
MAX_MESSAGE_BYTES = 16 << 20


def server_frame(data: bytes, *, text: bool) -> bytes:
    """One unmasked, unfragmented WebSocket frame (RFC 6455 section 5.2)."""
    first = 0x81 if text else 0x82
    size = len(data)
    if size < 126:
        return bytes((first, size)) + data
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size) + data
    return struct.pack("!BBQ", first, 127, size) + data


async def handle_broadcast(request: web.Request, state: TargetState, room: str
                           ) -> web.WebSocketResponse:
    """Join ``room`` and relay each message to its other members until the client leaves."""
    ws = web.WebSocketResponse(compress=False, decode_text=False,
                               max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    transport = request.transport
    counters = state.counters
    counters.connections += 1
    state.sockets.add(ws)
    members = state.rooms.setdefault(room, set())
    if transport is not None:
        members.add(transport)
    try:
        while True:
            msg = await ws.receive()
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return ws
            counters.messages += 1
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            frame = server_frame(data, text=msg.type is WSMsgType.TEXT)
            for member in tuple(members):
                if member is not transport and not member.is_closing():
                    member.write(frame)
                    counters.replies += 1
    finally:
        members.discard(transport)
        if not members:
            state.rooms.pop(room, None)
        state.sockets.discard(ws)
