"""gRPC messages without I/O: requests from the body pool, replies to (cid, payload).

Requests are built the way the JSON frames are: each of the scenario's ``pool``
bodies is encoded once (on first use), and each message only appends its
correlation id and sequence number as protobuf fields. Protobuf allows that: a
field appended to an encoded message is that field set, so a request costs two
concatenations and two varints, no message object. Replies are decoded with the
method's reply class (upb, C) and read for their cid; their payload for the store
is their JSON form.

``send`` rows keep the request's JSON form (the pool's frame: what redaction
reads and the fault injector edits); ``bytes`` is the size on the wire.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from streambench.errors import ConfigError
from streambench.generate.engine.correlate import id_text, lookup, parse_path
from streambench.scenario.proto import (
    FieldInfo,
    Method,
    ProtoProblem,
    correlation_fields,
    encode_body,
    is_repeated,
)

_ZIGZAG = (FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64)
_FIXED64 = (FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64)
_FIXED32 = (FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32)
_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


class CodecError(ValueError):
    """A message that cannot be encoded (a faulted body) or a reply that does not decode."""


def varint(value: int) -> bytes:
    """``value`` (>= 0) as a protobuf base-128 varint."""
    # Up to three bytes (2,097,151: a run's sequence numbers, a cid's length) without a
    # loop: this is on every request's path.
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _seq_encoder(field: FieldInfo | None) -> Callable[[int], bytes]:
    """``seq`` -> its encoded field (tag included); an empty encoding without a field."""
    if field is None:
        return lambda seq: b""
    if field.type in _FIXED64:
        tag = _tag(field.number, 1)
        return lambda seq: tag + struct.pack("<q", seq)
    if field.type in _FIXED32:
        tag = _tag(field.number, 5)
        return lambda seq: tag + struct.pack("<i", seq)
    tag = _tag(field.number, 0)
    if field.type in _ZIGZAG:
        return lambda seq: tag + varint(seq << 1)  # zigzag of a positive number
    return lambda seq: tag + varint(seq)


def reply_dict(reply: Message, *, flat: tuple[str, ...] | None) -> dict[str, Any]:
    """A reply as JSON-able data, field names as in the proto (what the store keeps).

    A ``flat`` type (its field names, from :func:`flat_fields`: plain scalars only,
    the common case) is read field by field, defaults included (reading named
    fields is five times cheaper than protobuf's ``ListFields``); anything else
    (nested messages, enums, bytes, maps, lists) goes through protobuf's JSON mapping.
    """
    if flat is not None:
        return {name: getattr(reply, name) for name in flat}
    return json_format.MessageToDict(reply, preserving_proto_field_name=True)


def _json(doc: dict[str, Any]) -> str:
    """``doc`` as JSON text: the payload a ``recv`` row keeps until the next flush.

    Text, not orjson's bytes: orjson builds its bytes in a 1 KiB buffer and
    shrinks it, so each one is a C ``malloc``'d block; thousands of them held
    until the flush fragment the heap (measured: 3.5 us per reply, against
    1.6 us for the same JSON as a ``str``, a small object Python allocates itself).
    """
    return orjson.dumps(doc).decode()


def flat_fields(cls: type[Message]) -> tuple[str, ...] | None:
    """The field names of ``cls`` when each is a single plain scalar (no message, enum,
    bytes, list), else None."""
    fields = cls.DESCRIPTOR.fields
    if all(f.message_type is None and f.enum_type is None
           and f.type != FieldDescriptor.TYPE_BYTES and not is_repeated(f) for f in fields):
        return tuple(f.name for f in fields)
    return None


class GrpcCodec:
    """Requests and replies of one method for one run. Build once; pure after that."""

    def __init__(self, method: Method, bodies: Callable[[int], dict[str, Any]], *, pool: int,
                 cid_field: str, seq_field: str, reply_id: str | None = None,
                 payloads: bool = True) -> None:
        """``bodies(i)``: body ``i`` of the run's ``pool`` (placeholders filled, without
        the cid and seq fields), as the JSON frames of the same message number have it;
        ``reply_id``: the path where replies carry the cid (``replies.id``), else the
        reply's field ``cid_field``."""
        try:
            cid, seq = correlation_fields(method, cid_field=cid_field, seq_field=seq_field,
                                          reply_id=reply_id)
            first = encode_body(method, bodies(0))  # the scenario checked its types
        except ProtoProblem as exc:
            raise CodecError(f"{exc.field}: {exc}") from None
        # Encoded on first use: a connection pays for the bodies it sends, not the pool.
        self._prefixes: list[bytes | None] = [first, *([None] * (pool - 1))]
        self._bodies = bodies
        self.method = method
        self._cid_tag = None if cid is None else _tag(cid.number, 2)
        self._seq = _seq_encoder(seq)
        self._size = pool
        self._request_cls = method.request
        self._decode = method.response.FromString
        reply_fields = method.response.DESCRIPTOR.fields_by_name
        self.reply_cid_field = cid_field if cid_field in reply_fields else None
        # A path into the reply's JSON form (the engine's path model), read only when given.
        self.reply_path = None if reply_id is None else parse_path(reply_id)
        self.payloads = payloads
        self._flat = flat_fields(method.response)

    def request(self, i: int, cid: str, seq: int) -> bytes:
        """Request number ``i`` (body ``i % pool``) with its cid and seq, as wire bytes.

        Raises ConfigError when body ``i % pool`` does not fit the request type (the
        scenario's check encodes one rendering; another may differ, e.g. in range).
        """
        data = self._prefixes[i % self._size]
        if data is None:
            data = self._prefixes[i % self._size] = self._encode(i % self._size)
        if self._cid_tag is not None:
            raw = cid.encode()
            data += self._cid_tag + varint(len(raw)) + raw
        return data + self._seq(seq)

    def _encode(self, index: int) -> bytes:
        try:
            return encode_body(self.method, self._bodies(index))
        except ProtoProblem as exc:
            raise ConfigError(f"message.body (pool entry {index}): {exc}") from None

    def from_json(self, frame: bytes, *, original: bytes) -> bytes:
        """A JSON frame as a fault left it, as wire bytes.

        Names the request type does not know are left out (as a protobuf peer
        would drop them); a frame that is not JSON any more (``malformed``) is
        sent as ``original`` cut by one byte, which no peer can decode.
        CodecError when a value does not fit its field (a ``schema_drift`` retype).
        """
        try:
            doc = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return original[:-1]
        try:
            message = json_format.ParseDict(doc, self._request_cls(), ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CodecError(first) from None
        return bytes(message.SerializeToString())

    def reply(self, data: bytes) -> tuple[str | None, str | None]:
        """``(cid or None, JSON payload or None)`` of a reply; CodecError if it does not
        decode as the method's reply type."""
        try:
            reply = self._decode(data)
        except DecodeError as exc:
            raise CodecError(f"not a {self.method.response.DESCRIPTOR.name}: {exc}") from None
        if self.reply_path is not None:
            doc = reply_dict(reply, flat=self._flat)
            cid = id_text(lookup(doc, self.reply_path))
            return cid or None, _json(doc) if self.payloads else None
        cid = getattr(reply, self.reply_cid_field) if self.reply_cid_field else None
        if isinstance(cid, bytes):
            cid = cid.decode("utf-8", "replace")
        payload = _json(reply_dict(reply, flat=self._flat)) if self.payloads else None
        return cid or None, payload
