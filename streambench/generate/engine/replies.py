"""Matching replies to requests by correlation id (MQTT and HTTP clients).

The same rules as the WebSocket client's ``on_reply``: the cid is found by
text search for ``"<cid_field>":"`` (the last occurrence, as the body pool
writes it last-but-one), without parsing the JSON; a reply with no cid is
``garbage``, an unknown cid ``unmatched``, a cid that already timed out
``late``; a reply carrying an ``"error"`` field the request did not have is
``error_reply``. Only those rows are appended; nothing else happens per reply.
"""

from __future__ import annotations

import orjson

from streambench.capture.schema import Kind
from streambench.generate.engine.context import Inflight, RunContext

PAYLOAD_LIMIT = 4096  # characters of an unexpected reply kept for the error row


class ReplyMatcher:
    """Resolves replies against one connection's :class:`Inflight`."""

    __slots__ = ("body_has_error", "cid_key", "conn", "inflight", "record", "topic")

    def __init__(self, ctx: RunContext, inflight: Inflight, *, conn: int, topic: str) -> None:
        self.record = ctx.record
        self.inflight = inflight
        self.conn = conn
        self.topic = topic
        self.cid_key = f'"{ctx.scenario.message.cid_field}":"'
        self.body_has_error = "error" in ctx.scenario.message.body

    def on_reply(self, message: str, now: int, status: str | None = None) -> str | None:
        """Record the reply; return its cid when it resolved a message in flight."""
        start = message.rfind(self.cid_key)
        if start < 0:
            self.record((Kind.ERROR, now, self.conn, None, None, None, None, len(message),
                         self.topic, "garbage", "reply without a correlation id",
                         message[:PAYLOAD_LIMIT]))
            return None
        start += len(self.cid_key)
        cid = message[start:message.find('"', start)]
        sent = self.inflight.pending.pop(cid, None)
        if sent is None:
            late = cid in self.inflight.late
            self.record((Kind.ERROR, now, self.conn, None, cid, None, None, len(message),
                         self.topic, "late" if late else "unmatched",
                         "reply after its timeout" if late else "unknown correlation id",
                         message[:PAYLOAD_LIMIT]))
            return None
        seq, intended, sent_at = sent
        if '"error"' in message and not self.body_has_error:
            error = error_text(message)
            if error is not None:
                self.record((Kind.ERROR, now, self.conn, seq, cid, intended, sent_at,
                             len(message), self.topic, "error_reply", error, message))
                return cid
        self.record((Kind.RECV, now, self.conn, seq, cid, intended, sent_at, len(message),
                     self.topic, status, None, message))
        return cid


def error_text(message: str) -> str | None:
    """The server's error text if the reply is a JSON object with ``error``, else None."""
    try:
        doc = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and "error" in doc:
        return str(doc["error"])
    return None
