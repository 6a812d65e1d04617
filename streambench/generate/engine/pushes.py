"""Server pushes as rows: the gap since the last push, the server's stamp and number.

Sans-I/O. A push is a message the server sends on its own (an SSE event, a
reply a rule says is ``as: push``, a further answer on an ``expect: stream``
stream). :class:`PushLog` (one per connection) records each as a ``push``
row laid out like every row (see :mod:`streambench.capture.writer`), with
these slots read this way:

============  ==============================================================
``seq``       the server's sequence number (``stream.sequence``), else null
``cid``       the stream: the id of the subscription it answers, else null
              (the connection's one stream)
``intended``  the arrival of the previous push of the same stream, so
              ``ts - intended_ns`` is the *inter-arrival gap* (null for the
              first push of a stream)
``sent``      the server's timestamp (``stream.timestamp``), so
              ``ts - sent_ns`` is the push's *staleness* (null without one)
``status``    what the push is: the rule's name, or an SSE event's ``id:``
============  ==============================================================

``latency_ms`` and ``service_ms`` stay null on push rows: nobody sent
anything at an intended time, so there is no latency to speak of
(``streambench.analyze.pushes`` computes gaps and staleness from the slots).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streambench.capture.schema import Kind
from streambench.capture.writer import Row
from streambench.generate.engine.correlate import NOT_JSON, Path, lookup, parse, parse_path
from streambench.scenario.streams import PushStream

_EPOCH_NS = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_us": 1_000,
             "epoch_ns": 1}


def epoch_ns(value: Any, timestamp_format: str) -> int | None:
    """A server timestamp as nanoseconds since 1970 UTC, or None when it is not one.

    ``epoch_*``: a number (or numeric text) in that unit; ``iso8601``: text such
    as ``2026-12-02T03:04:05.123Z`` (no zone means UTC).
    """
    if timestamp_format == "iso8601":
        return _iso_ns(value) if isinstance(value, str) else None
    if isinstance(value, str):
        try:
            value = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    scale = _EPOCH_NS[timestamp_format]
    if isinstance(value, int):
        return value * scale
    if not math.isfinite(value) or abs(value) >= 1e19 / scale:  # beyond int64 nanoseconds
        return None
    whole = math.floor(value)  # apart, so the fraction keeps the float's precision
    return whole * scale + round((value - whole) * scale)


def _iso_ns(text: str) -> int | None:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def sequence_number(value: Any) -> int | None:
    """A server sequence number (an integer, or integer text), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 63) else None
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return sequence_number(int(value))
    return None


@dataclass(frozen=True)
class PushReader:
    """Where a push carries its server timestamp and sequence number (compiled
    ``stream`` section). ``reads_json``: a push must be parsed to read them."""

    timestamp: Path | None = None
    timestamp_format: str = "epoch_ms"
    sequence: Path | None = None

    @classmethod
    def build(cls, stream: PushStream) -> PushReader:
        return cls(timestamp=None if stream.timestamp is None else parse_path(stream.timestamp),
                   timestamp_format=stream.timestamp_format or "epoch_ms",
                   sequence=None if stream.sequence is None else parse_path(stream.sequence))

    @property
    def reads_json(self) -> bool:
        return self.timestamp is not None or self.sequence is not None

    def read(self, doc: Any) -> tuple[int | None, int | None]:
        """``(server epoch ns, sequence number)`` of a parsed push; None where absent."""
        if doc is NOT_JSON or not self.reads_json:
            return None, None
        stamp = None
        if self.timestamp is not None:
            stamp = epoch_ns(lookup(doc, self.timestamp), self.timestamp_format)
        number = None if self.sequence is None else sequence_number(lookup(doc, self.sequence))
        return stamp, number


class PushLog:
    """Records one connection's pushes, keeping the last arrival of each stream.

    ``epoch_offset`` tells, when a push arrives, what to add to
    ``time.monotonic_ns()`` to get epoch time: the server's stamp is turned into
    monotonic time with the offset *of that moment* (rows hold monotonic times,
    which the writer shifts by one offset for the whole run), so
    ``ts - sent_ns`` is the wall clock at arrival minus the server's stamp even
    when the wall clock is slewed during the run.
    """

    __slots__ = ("conn", "epoch_offset", "last", "reader", "record")

    def __init__(self, reader: PushReader, record: Callable[[Row], None], *, conn: int,
                 epoch_offset: Callable[[], int]) -> None:
        self.reader = reader
        self.record = record
        self.conn = conn
        self.epoch_offset = epoch_offset
        self.last: dict[str | None, int] = {}  # stream -> arrival of its last push

    def push(self, text: str, now: int, *, stream: str | None, topic: str | None,
             status: str | None, doc: Any = None, size: int | None = None,
             arrival_known: bool = True) -> None:
        """Record one push (``doc``: the push already parsed, if it was).

        ``arrival_known`` False: the push waited unread for a while (``now`` is when
        it was read), so it gets no gap and no staleness, and the next push no gap.
        """
        if self.reader.reads_json and doc is None:
            doc = parse(text)
        stamp, number = self.reader.read(doc)
        sent = None if stamp is None or not arrival_known else stamp - self.epoch_offset()
        previous = self.last.get(stream) if arrival_known else None
        if arrival_known:
            self.last[stream] = now
        else:
            self.last.pop(stream, None)
        self.record((Kind.PUSH, now, self.conn, number, stream, previous, sent,
                     len(text) if size is None else size, topic, status, None, text))

    def opened(self, stream: str, now: int) -> None:
        """A stream's first message answered its request: later pushes measure from it."""
        self.last[stream] = now

    def ended(self, stream: str | None) -> None:
        self.last.pop(stream, None)
