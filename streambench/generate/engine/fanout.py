"""Fan-out bookkeeping: which members must still get each broadcast message. Sans-I/O.

A message kind with ``expect: fanout`` is sent on one connection and expected
on every other member of the sender's group (a chat room, the subscribers of
an MQTT topic). The :class:`Ledger` is shared by every connection of the
process: a sender calls :meth:`Ledger.sent` when the message goes out, each
receiver's reply path calls :meth:`Ledger.delivered` with the id the copy
carries, and the engine's sweep calls :meth:`Ledger.expire`. Rows:

===========  ==============================================================
delivery     one per member that got the message: ``conn`` the receiver,
             ``seq``/``cid``/``intended_ns``/``sent_ns`` the sender's message,
             ``status`` the group; latency from the sender's *intended* time
timeout      a member that had not got it ``load.timeout`` after the intended
             time (status ``delivery``; the cid names the message)
error        ``duplicate`` (a member got it twice), ``late_delivery`` (after
             its timeout), ``stray_delivery`` (a connection outside the group)
other        ``own_copy``: the sender's copy when ``fanout.self`` is false
===========  ==============================================================

Deliveries expected per message are the members at send time; a receiver's
expected count is the delivery and timeout rows of its ``conn``; the time until
the last member got a message is the largest latency of its deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streambench.capture.schema import Kind
from streambench.capture.writer import Row

MISSED = "fan-out message not delivered to this member in time"  # a missed delivery's error
DONE_LIMIT = 100_000  # finished messages remembered, to tell duplicates and late copies
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_group(template: str, values: Mapping[str, Any]) -> str:
    """A group (or URL) template with ``{{name}}`` filled from one connection's values."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def topic_matches(pattern: str, topic: str) -> bool:
    """An MQTT topic filter (``+`` one level, ``#`` the rest) against a topic name."""
    if pattern == topic:
        return True
    levels, names = pattern.split("/"), topic.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            return True
        if index >= len(names) or (level != "+" and level != names[index]):
            return False
    return len(levels) == len(names)


@dataclass
class Broadcast:
    """One fan-out message in flight."""

    sender: int
    seq: int
    intended: int
    sent: int
    group: str
    members: frozenset[int]
    waiting: set[int] = field(default_factory=set)


class Ledger:
    """Fan-out messages in flight for one process's connections (oldest first).

    ``self_copy``: the sender is a member that gets its own copy (Channels'
    ``group_send``). ``senders`` connections call :meth:`sender_done` when their
    schedule is over; until then, and while messages are in flight, members
    stay connected (:attr:`drained`).
    """

    def __init__(self, record: Callable[[Row], None], *, timeout_ns: int, self_copy: bool,
                 senders: int, topic_filters: bool = False) -> None:
        self.record = record
        self.timeout_ns = timeout_ns
        self.self_copy = self_copy
        self.topic_filters = topic_filters  # MQTT: keys are subscriptions, groups topics
        self.senders_left = senders
        self.keys: dict[int, str] = {}  # conn -> its group (or its subscription)
        self.pending: dict[str, Broadcast] = {}
        self.done: dict[str, tuple[Broadcast, frozenset[int]]] = {}  # cid -> (it, missed)
        self._members: dict[str, frozenset[int]] = {}
        self._drained = asyncio.Event()  # set once drained (members wait on it, not poll)

    # -- membership -------------------------------------------------------------
    def join(self, conn: int, key: str) -> None:
        """Connection ``conn`` is a member of group ``key`` (MQTT: subscribes to it)."""
        self.keys[conn] = key
        self._members.clear()

    def members(self, group: str) -> frozenset[int]:
        found = self._members.get(group)
        if found is None:
            match = topic_matches if self.topic_filters else str.__eq__
            found = frozenset(c for c, key in self.keys.items() if match(key, group))
            self._members[group] = found
        return found

    # -- the sender's side --------------------------------------------------------
    def sent(self, cid: str, *, conn: int, seq: int, intended: int, sent: int, group: str
             ) -> int:
        """Expect ``cid`` on the group's members; how many deliveries are expected."""
        members = self.members(group)
        waiting = set(members)
        if not self.self_copy:
            waiting.discard(conn)
        if waiting:
            self.pending[cid] = Broadcast(conn, seq, intended, sent, group, members, waiting)
        return len(waiting)

    def cancel(self, cid: str) -> None:
        """The message was never sent after all (the connection closed while sending)."""
        self.pending.pop(cid, None)
        self._check_drained()

    def sender_done(self) -> None:
        self.senders_left -= 1
        self._check_drained()

    @property
    def drained(self) -> bool:
        """Every sender is done and every message delivered or timed out."""
        return self.senders_left <= 0 and not self.pending

    def _check_drained(self) -> None:
        if self.drained:
            self._drained.set()

    async def wait_drained(self, stop: asyncio.Event) -> None:
        """Return once :attr:`drained` (or ``stop`` is set): one wake-up per member, not a
        poll (a thousand members polling every 20 ms would cost the receivers' core)."""
        if self.drained or stop.is_set():
            return
        waits = [asyncio.ensure_future(self._drained.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await wait

    # -- the receivers' side ------------------------------------------------------
    def delivered(self, cid: str, conn: int, now: int, message: str, topic: str) -> bool:
        """Record a copy of ``cid`` received on ``conn``; False if it is no fan-out message."""
        entry = self.pending.get(cid)
        if entry is not None:
            waiting = entry.waiting
            if conn in waiting:
                waiting.remove(conn)
                self.record((Kind.DELIVERY, now, conn, entry.seq, cid, entry.intended,
                             entry.sent, len(message), topic, entry.group, None, message))
                if not waiting:
                    del self.pending[cid]
                    self._remember(cid, entry, frozenset())
                    if not self.pending and self.senders_left <= 0:
                        self._drained.set()
                return True
            self._extra(entry, frozenset(), cid, conn=conn, now=now, message=message,
                        topic=topic)
            return True
        done = self.done.get(cid)
        if done is None:
            return False
        self._extra(done[0], done[1], cid, conn=conn, now=now, message=message, topic=topic)
        return True

    def _extra(self, entry: Broadcast, missed: frozenset[int], cid: str, *, conn: int,
               now: int, message: str, topic: str) -> None:
        """A copy nobody waits for: late, the sender's own, a duplicate or a stray."""
        if conn in missed:
            status, error = "late_delivery", "delivery after its timeout"
        elif conn == entry.sender and not self.self_copy:
            self.record((Kind.OTHER, now, conn, entry.seq, cid, None, None, len(message), topic,
                         "own_copy", None, message[:4096]))
            return
        elif conn in entry.members:
            status, error = "duplicate", f"delivered again to a member of {entry.group}"
        else:
            status, error = "stray_delivery", f"delivered outside its group {entry.group}"
        self.record((Kind.ERROR, now, conn, entry.seq, cid, entry.intended, entry.sent,
                     len(message), topic, status, error, message[:4096]))

    def expire(self, now: int, topic_of: Callable[[int], str]) -> int:
        """A ``timeout`` row per member still waiting for a message past its timeout."""
        expired = 0
        pending, timeout_ns = self.pending, self.timeout_ns
        while pending:
            cid, entry = next(iter(pending.items()))
            if entry.intended + timeout_ns > now:
                break
            del pending[cid]
            for conn in sorted(entry.waiting):
                self.record((Kind.TIMEOUT, now, conn, entry.seq, cid, entry.intended,
                             entry.sent, None, topic_of(conn), "delivery", MISSED, None))
                expired += 1
            self._remember(cid, entry, frozenset(entry.waiting))
        self._check_drained()
        return expired

    def _remember(self, cid: str, entry: Broadcast, missed: frozenset[int]) -> None:
        done = self.done
        done[cid] = (entry, missed)
        if len(done) > DONE_LIMIT:
            del done[next(iter(done))]
