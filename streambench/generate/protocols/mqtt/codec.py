"""A lean MQTT 3.1.1 / 5 packet codec: bytes in, packets out; no sockets, no clock.

Only what a load generator needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK,
PUBLISH with QoS 0/1/2 and its acknowledgements, PINGREQ/PINGRESP and
DISCONNECT. MQTT 5 properties are written empty (except the session expiry
of a persistent session) and skipped when read. The hot paths are
:meth:`Publisher.packet` (one PUBLISH, topic and flags encoded once) and
:meth:`PacketReader.feed` (every complete packet in a chunk of bytes).

Reference: OASIS MQTT 3.1.1 section 2-3, MQTT 5.0 section 2-3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
_PID = struct.Struct("!H")

CONNACK_REASONS = {  # 3.1.1 return codes; MQTT 5 reason codes >= 0x80
    1: "unacceptable protocol version", 2: "client identifier rejected",
    3: "server unavailable", 4: "bad user name or password", 5: "not authorized",
    0x80: "unspecified error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password",
    0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy",
    0x8A: "banned", 0x8C: "bad authentication method",
}


class ProtocolViolation(ValueError):
    """The peer sent bytes that are not MQTT (a malformed length or packet)."""


def varint(n: int) -> bytes:
    """MQTT variable byte integer (remaining length, property lengths)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return _PID.pack(len(data)) + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


@dataclass(frozen=True)
class WillMessage:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False


def connect_packet(client_id: str, *, version: int, clean: bool, keepalive: int,
                   username: str | None = None, password: str | None = None,
                   will: WillMessage | None = None, session_expiry: int = 0) -> bytes:
    """CONNECT; ``version`` 4 (3.1.1) or 5. ``session_expiry`` (seconds) is MQTT 5 only."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) \
        | (0x40 if password is not None else 0)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    body = bytearray(_string("MQTT") + bytes((version, flags)) + _PID.pack(keepalive))
    if version == 5:
        props = b"\x11" + struct.pack("!I", session_expiry) if session_expiry else b""
        body += varint(len(props)) + props
    body += _string(client_id)
    if will is not None:
        if version == 5:
            body += b"\x00"  # will properties
        body += _string(will.topic) + _string(will.payload)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(CONNECT << 4, bytes(body))


def subscribe_packet(packet_id: int, topic: str, *, qos: int, version: int) -> bytes:
    props = b"\x00" if version == 5 else b""
    return _packet(0x82, _PID.pack(packet_id) + props + _string(topic) + bytes((qos,)))


def ack_packet(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (success; the same bytes in 3.1.1 and 5)."""
    first = (kind << 4) | (0x02 if kind == PUBREL else 0)
    return bytes((first, 2)) + _PID.pack(packet_id)


class Publisher:
    """PUBLISH packets to one topic with fixed QoS and retain; packet ids 1..65535."""

    __slots__ = ("_first", "_head", "_v5", "next_id", "qos")

    def __init__(self, topic: str, *, qos: int, retain: bool, version: int) -> None:
        self.qos = qos
        self._first = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0)
        self._head = _string(topic)
        self._v5 = version == 5
        self.next_id = 0

    def packet(self, payload: bytes, *, correlation: bytes | None = None,
               response_topic: str | None = None) -> tuple[bytes, int]:
        """``(PUBLISH bytes, packet id)``; the id is 0 at QoS 0.

        MQTT 5 only: ``correlation`` is sent as the Correlation Data property and
        ``response_topic`` as the Response Topic (where the answer is expected).
        """
        head = self._head
        if self.qos:
            packet_id = self.next_id % 65535 + 1
            self.next_id = packet_id
            head = head + _PID.pack(packet_id)
        else:
            packet_id = 0
        if self._v5 and correlation is None:
            head = head + b"\x00"
        elif self._v5 and correlation is not None:
            props = (b"\x08" + _string(response_topic) if response_topic else b"") \
                + b"\x09" + _string(correlation)
            head = head + varint(len(props)) + props
        size = len(head) + len(payload)
        if size < 128:
            return bytes((self._first, size)) + head + payload, packet_id
        return bytes((self._first,)) + varint(size) + head + payload, packet_id


MAX_PACKET = 1 << 20  # a packet's remaining length above this is refused (see PacketReader)


class PacketReader:
    """Reassembles packets from a byte stream. Call :meth:`feed` with each chunk.

    A packet announcing more than ``max_size`` bytes is a ProtocolViolation at
    once (the length comes first): a peer cannot make the reader buffer more.
    """

    __slots__ = ("_buffer", "max_size")

    def __init__(self, max_size: int = MAX_PACKET) -> None:
        self._buffer = b""
        self.max_size = max_size

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Every complete packet in ``data`` as ``(first byte, body)``; keeps a partial tail."""
        buffer = self._buffer + data if self._buffer else data
        end = len(buffer)
        pos = 0
        packets = []
        while end - pos >= 2:
            size = buffer[pos + 1]
            i = pos + 2
            if size & 0x80:  # a multi-byte remaining length
                size, i = _long_length(buffer, pos + 1, end)
                if i < 0:
                    break
            if size > self.max_size:
                raise ProtocolViolation(f"a packet of {size} bytes, over the limit of "
                                        f"{self.max_size}")
            if i + size > end:
                break  # incomplete: wait for more bytes
            packets.append((buffer[pos], buffer[i:i + size]))
            pos = i + size
        self._buffer = buffer[pos:]
        return packets


def _long_length(buffer: bytes, start: int, end: int) -> tuple[int, int]:
    """``(remaining length, index after it)``, or ``(0, -1)`` when it is not all here yet."""
    size, shift, i = 0, 0, start
    while i < end:
        byte = buffer[i]
        i += 1
        size |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return size, i
        shift += 7
        if shift > 21:
            raise ProtocolViolation("remaining length longer than 4 bytes")
    return 0, -1


def _skip_properties(body: bytes, pos: int) -> int:
    """Index after an MQTT 5 property block (its length, then the properties) at ``pos``."""
    length, after = _long_length(body, pos, len(body))
    if after < 0:
        raise ProtocolViolation("property length runs past the packet")
    return after + length


def publish_fields(first: int, body: bytes, *, version: int) -> tuple[bytes, int, bytes]:
    """``(topic, packet id, payload)`` of a PUBLISH body (packet id 0 at QoS 0)."""
    if len(body) < 2:
        raise ProtocolViolation("PUBLISH shorter than its topic length")
    n = (body[0] << 8) | body[1]
    pos = 2 + n
    topic = body[2:pos]
    packet_id = 0
    if first & 0x06:
        packet_id = packet_id_of(body[pos:pos + 2], what="PUBLISH")
        pos += 2
    if pos > len(body):
        raise ProtocolViolation("PUBLISH shorter than its topic and packet id")
    if version == 5:
        pos = _skip_properties(body, pos)
        if pos > len(body):
            raise ProtocolViolation("PUBLISH properties run past the packet")
    return topic, packet_id, body[pos:]


def packet_id_of(data: bytes, *, what: str) -> int:
    """The 16-bit packet identifier at the start of ``data``."""
    if len(data) < 2:
        raise ProtocolViolation(f"{what} without a packet identifier")
    return (data[0] << 8) | data[1]


def publish_correlation(first: int, body: bytes) -> bytes | None:
    """The Correlation Data property of an MQTT 5 PUBLISH body, or None."""
    pos = 2 + ((body[0] << 8) | body[1]) + (2 if first & 0x06 else 0)
    length, start = _long_length(body, pos, len(body))
    end = start + length
    if start < 0 or end > len(body):
        raise ProtocolViolation("property length runs past the packet")
    while start < end:
        ident = body[start]
        start += 1
        if ident == 0x09:  # correlation data: two-byte length, bytes
            size = (body[start] << 8) | body[start + 1]
            return body[start + 2:start + 2 + size]
        start = _skip_property(body, ident, start)
    return None


def _skip_property(body: bytes, ident: int, pos: int) -> int:
    """Index after the value of property ``ident`` starting at ``pos`` (MQTT 5 2.2.2.2)."""
    if ident in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):  # a byte
        return pos + 1
    if ident in (0x13, 0x21, 0x22, 0x23):  # two-byte integer
        return pos + 2
    if ident in (0x02, 0x11, 0x18, 0x27):  # four-byte integer
        return pos + 4
    if ident == 0x0B:  # variable byte integer
        return _long_length(body, pos, len(body))[1]
    if ident == 0x26:  # user property: two strings
        pos += 2 + ((body[pos] << 8) | body[pos + 1])
    return pos + 2 + ((body[pos] << 8) | body[pos + 1])  # string or binary data


def connack_fields(body: bytes) -> tuple[bool, int]:
    """``(session present, return/reason code)`` of a CONNACK body."""
    if len(body) < 2:
        raise ProtocolViolation("CONNACK shorter than 2 bytes")
    return bool(body[0] & 1), body[1]


def suback_codes(body: bytes, *, version: int) -> bytes:
    """The granted QoS / reason codes of a SUBACK body (>= 0x80 is a refusal)."""
    packet_id_of(body, what="SUBACK")
    pos = 2
    if version == 5:
        pos = _skip_properties(body, pos)
    return body[pos:]
