"""Matching replies to requests: the verdicts of the classifier, as rows.

Every protocol client hands each reply to :meth:`ReplyMatcher.on_reply`
(the WebSocket pump from ``data_received``, synchronously). The reply is read
once and classified by the scenario's plan
(:mod:`streambench.generate.engine.correlate`); then:

=========  ===============================================================
answer     resolves the message in flight with its id: a ``recv`` row (an
           ``error``/``error_reply`` row when its error field is set); the id
           of another member's fan-out message is a ``delivery`` row
           (:mod:`.fanout`); an id nothing awaits is ``unmatched``, one that
           timed out ``late``; a further answer on an open stream
           (``expect: stream``) is a ``push``
end        closes a stream: an ``other`` row named after its rule
push       a message the server pushed: a ``push`` row (engine/pushes.py)
other      a reply that is no answer (welcome, ping, push): an ``other`` row
           with the rule's name as status, and its ``respond`` frame sent
garbage    not JSON, or no id where answers carry it: ``error``/``garbage``
=========  ===============================================================

A class of reply is added by a rule action in the classifier and one entry
in :attr:`ReplyMatcher.handlers` (a class attribute: a matcher per connection,
100,000 connections per machine, should not each carry a table of bound
methods).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from orjson import JSONDecodeError, loads

from streambench.capture.schema import RECV_CODE, Kind
from streambench.generate.engine.context import Inflight, RunContext
from streambench.generate.engine.conversation import Plan
from streambench.generate.engine.correlate import NOT_JSON, UNSET, Verdict, id_text
from streambench.limits import too_deep

PAYLOAD_LIMIT = 4096  # characters of an unexpected reply kept for the error row
Respond = Callable[[str, int], None]  # (rule name, receive time): send the rule's frame
Handler = Callable[["ReplyMatcher", Verdict, str, int, "str | None"], "str | None"]


class ReplyMatcher:
    """Resolves replies against one connection's :class:`Inflight`."""

    __slots__ = ("classifier", "conn", "decode", "error_key", "fanout", "id_key", "in_order",
                 "inflight", "plan", "pushes", "record", "respond", "topic")

    def __init__(self, ctx: RunContext, inflight: Inflight, *, conn: int, topic: str,
                 plan: Plan | None = None, respond: Respond | None = None) -> None:
        self.record = ctx.record
        self.inflight = inflight
        self.conn = conn
        self.topic = topic
        self.plan = plan = plan or ctx.conversation
        self.classifier = plan.classifier
        self.decode = plan.decode
        self.in_order = plan.in_order
        self.respond = respond
        self.fanout = ctx.fanout  # copies of other members' fan-out messages
        self.pushes = ctx.push_log(conn)
        # The plain echo's fast path: one kind, a top-level id and error field, no rules.
        self.id_key = self.error_key = None
        classifier = self.classifier
        if plan.plain and classifier.id_path is not None and len(classifier.id_path) == 1 \
                and (classifier.error_path is None or len(classifier.error_path) == 1):
            self.id_key = classifier.id_path[0]
            self.error_key = None if classifier.error_path is None else classifier.error_path[0]

    def on_reply(self, message: str, now: int, status: str | None = None, *,
                 cid: str | None = None) -> str | None:
        """Record the reply; return its cid when it resolved a message in flight.

        ``cid``: the id carried outside the payload (MQTT 5 correlation data).
        """
        if self.id_key is not None and cid is None:
            try:
                doc = loads(message)
            except JSONDecodeError:
                doc = NOT_JSON
            if type(doc) is dict:
                found = doc.get(self.id_key)
                if type(found) is str and found in self.inflight.pending and \
                        doc.get(self.error_key) in UNSET:
                    seq, intended, sent_at = self.inflight.pending.pop(found)
                    self.record((RECV_CODE, now, self.conn, seq, found, intended, sent_at,
                                 len(message), self.topic, status, None, message))
                    return found
                fanout = self.fanout
                if fanout is not None and type(found) is str and \
                        fanout.delivered(found, self.conn, now, message, self.topic):
                    return None
            if doc is not NOT_JSON and too_deep(message):
                doc = NOT_JSON  # what follows walks the document: it must be bounded
            verdict = self.classifier.classify(message, doc)
            return self.handlers[verdict.action](self, verdict, message, now, status)
        doc = self.decode(message)
        if cid is not None:
            verdict = Verdict("answer", cid, doc=doc)
            if doc is not NOT_JSON:
                verdict = self._with_id(self.classifier.classify(message, doc), cid)
        else:
            verdict = self.classifier.classify(message, doc)
        return self.handlers[verdict.action](self, verdict, message, now, status)

    @staticmethod
    def _with_id(verdict: Verdict, cid: str) -> Verdict:
        if verdict.action == "garbage":  # no id in the payload: the property has it
            return Verdict("answer", cid, doc=verdict.doc)
        return Verdict(verdict.action, cid, verdict.error, verdict.rule, verdict.doc)

    # -- handlers ------------------------------------------------------------
    def _answer(self, verdict: Verdict, message: str, now: int, status: str | None
                ) -> str | None:
        inflight = self.inflight
        cid = verdict.cid
        if cid is None and self.in_order:
            cid = next(iter(inflight.pending), None)
        sent = None if cid is None else inflight.pending.pop(cid, None)
        name = verdict.rule.name if verdict.rule is not None else status
        if sent is None:
            if cid is not None and self.fanout is not None and \
                    self.fanout.delivered(cid, self.conn, now, message, self.topic):
                return None
            if cid is not None and cid in inflight.streams:
                self.pushes.push(message, now, stream=cid, topic=self.topic,
                                 status=name or "stream", doc=verdict.doc)
                return None
            late = cid is not None and cid in inflight.late
            self.record((Kind.ERROR, now, self.conn, None, cid, None, None, len(message),
                         self.topic, "late" if late else "unmatched",
                         "reply after its timeout" if late else
                         "nothing in flight" if cid is None else "unknown correlation id",
                         message[:PAYLOAD_LIMIT]))
            return None
        seq, intended, sent_at = sent
        # later pushes of the stream measure their gap from here
        if cid is not None and cid in inflight.streams:
            self.pushes.opened(cid, now)
        if verdict.action == "error":
            self.record((Kind.ERROR, now, self.conn, seq, cid, intended, sent_at, len(message),
                         self.topic, "error_reply", verdict.error, message))
        else:
            self.record((RECV_CODE, now, self.conn, seq, cid, intended, sent_at, len(message),
                         self.topic, name, None, message))
        return cid

    def _end(self, verdict: Verdict, message: str, now: int, status: str | None
             ) -> str | None:
        cid = verdict.cid
        resolved = None
        if cid is not None and cid in self.inflight.pending:  # a stream that sent nothing
            resolved = self._answer(Verdict("answer", cid, rule=verdict.rule), message, now,
                                    status)
        if cid is not None:
            self.inflight.close_stream(cid)
            self.pushes.ended(cid)
        if resolved is None:
            self._row(Kind.OTHER, now, message, cid=cid, status=_name(verdict))
        return resolved

    def _other(self, verdict: Verdict, message: str, now: int, status: str | None) -> None:
        self._row(Kind.OTHER, now, message, cid=verdict.cid, status=_name(verdict))
        if self.respond is not None and verdict.rule is not None \
                and verdict.rule.name in self.plan.responses:
            self.respond(verdict.rule.name, now)

    def _push(self, verdict: Verdict, message: str, now: int, status: str | None) -> None:
        self.pushes.push(message, now, stream=verdict.cid, topic=self.topic,
                         status=_name(verdict), doc=verdict.doc)

    def _garbage(self, verdict: Verdict, message: str, now: int, status: str | None) -> None:
        self.record((Kind.ERROR, now, self.conn, None, None, None, None, len(message),
                     self.topic, "garbage", verdict.error or "reply without a correlation id",
                     message[:PAYLOAD_LIMIT]))

    def _row(self, kind: Kind, now: int, message: str, *, cid: str | None,
             status: str | None) -> None:
        self.record((kind, now, self.conn, None, cid, None, None, len(message), self.topic,
                     status, None, message[:PAYLOAD_LIMIT]))

    handlers: ClassVar[dict[str, Handler]] = {
        "answer": _answer, "error": _answer, "end": _end, "other": _other, "garbage": _garbage,
        "push": _push,
    }


def _name(verdict: Verdict) -> str:
    return verdict.rule.name if verdict.rule is not None else verdict.action


def cid_of(value: Any) -> str | None:
    """A correlation id read from elsewhere (a property, a header) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return id_text(value)
