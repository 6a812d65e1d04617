"""Per-message bookkeeping of a slice: lost, duplicated, reordered and skipped messages.

Each returns the problem times (``at``) of the exceptions it finds among the
messages *due* in the slice (see :mod:`streambench.analyze.frame`):

``lost``
    timeouts, and sends for which no reply, error or timeout was ever recorded
    although the timeout had passed before the capture ended;
``duplicates``
    replies for a ``(conn, seq)`` that had already been answered;
``reordered``
    replies whose ``seq`` is lower than one already received on their
    connection (in arrival order);
``unsent``
    message numbers missing from a connection's sequence (neither sent nor
    failed), at the due time of the next message it did record.

Every row about a message is due at the same time, so a slice holds all of a
message's rows; what crosses slices (numbers skipped between the last message
of one slice and the first of the next) is settled from each slice's
``edges`` by :func:`unsent_between`, so slices can be read in any order, or
at the same time. Replies that overtook one of the slice's come from the
``reach`` after it, which the slice also loads.

Messages are numbered densely per connection, so the matching runs on numpy
arrays indexed by ``(conn, seq)`` (one slot per message) rather than on hash
joins; a connection whose numbers are too sparse for that falls back to
polars joins. Both give the same counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from streambench.analyze.frame import Slice

_DENSE_SLACK = 4  # slots per row before the dense layout gives way to hash joins
_SEQ_BITS = 40  # (conn << 40) | seq is one int64 key per message


@dataclass(frozen=True)
class Exceptions:
    """Problem times (epoch ns) of each kind of exception; ``unsent`` also has ``n``."""

    lost: np.ndarray
    duplicates: np.ndarray
    reordered: np.ndarray
    unsent: pl.DataFrame  # at, unsent
    edges: pl.DataFrame  # conn, low, low_at, high: each connection's first and last number


def _key() -> pl.Expr:
    return (pl.col("conn").cast(pl.Int64) * (1 << _SEQ_BITS)) + pl.col("seq")


class _Slots:
    """Dense slots for messages numbered ``low[conn]..high[conn]`` per connection:
    slot = ``offset[conn] + seq - low[conn]``."""

    def __init__(self, messages: pl.DataFrame) -> None:
        ranges = messages.group_by("conn").agg(low=pl.col("seq").min(), high=pl.col("seq").max())
        ranges = ranges.sort("conn")
        self.conns = ranges["conn"].to_numpy()
        self.low = ranges["low"].to_numpy()
        self.high = ranges["high"].to_numpy()
        sizes = self.high - self.low + 1
        self.size = int(sizes.sum()) if len(sizes) else 0
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        top = int(self.conns[-1]) if len(self.conns) else -1
        small = len(self.conns) == 0 or (int(self.conns[0]) >= 0 and top <= 4 * messages.height)
        self.dense = small and self.size <= _DENSE_SLACK * messages.height + 1024
        # connection number -> its position: a table, not a search, when numbers are small
        self.position = np.zeros(top + 1 if self.dense else 0, np.int64)
        if self.dense:
            self.position[self.conns] = np.arange(len(self.conns))
        self.base = self.offsets - self.low

    def index(self, rows: pl.DataFrame) -> np.ndarray:
        slots: np.ndarray = (self.base[self.position[rows["conn"].to_numpy()]]
                             + rows["seq"].to_numpy())
        return slots


def _with_seq(part: pl.DataFrame) -> pl.DataFrame:
    return part.filter(pl.col("seq").is_not_null())


def find_exceptions(sl: Slice, *, t_end: int, timeout_ns: int) -> Exceptions:
    """The slice's exceptions (see the module docstring)."""
    sends = _with_seq(sl.rows("send"))
    answers = _with_seq(sl.rows("recv", "error", "timeout"))
    scheduled = _with_seq(sl.rows("send", "error", "timeout"))
    replies = _with_seq(sl.rows("recv"))
    due_sends = sends.filter(pl.col("at") < t_end - timeout_ns)
    slots = _Slots(pl.concat([answers.select("conn", "seq"), sends.select("conn", "seq")]))
    if slots.dense:
        lost, duplicates = _dense_lost_duplicates(slots, due_sends, answers, replies)
    else:
        lost, duplicates = _hashed_lost_duplicates(due_sends, answers, replies)
    numbered = _Slots(scheduled.select("conn", "seq"))
    unsent = _dense_unsent(numbered, scheduled) if numbered.dense else _hashed_unsent(scheduled)
    edges = scheduled.group_by("conn").agg(
        low=pl.col("seq").min(), low_at=pl.col("at").get(pl.col("seq").arg_min()),
        high=pl.col("seq").max())
    timeouts = sl.rows("timeout")["at"].to_numpy()
    return Exceptions(np.concatenate([lost, timeouts]), duplicates, _reordered(sl), unsent,
                      edges)


def unsent_between(edges: list[pl.DataFrame]) -> pl.DataFrame:
    """Numbers skipped between the slices (``edges`` of each, in time order): ``at``
    (of the first message a connection recorded after the gap), ``unsent``."""
    if not edges:
        return pl.DataFrame(schema={"at": pl.Int64, "unsent": pl.Int64})
    rows = pl.concat([e.with_columns(part=pl.lit(i)) for i, e in enumerate(edges)])
    gaps = rows.sort("conn", "part").with_columns(
        unsent=pl.col("low") - pl.col("high").shift(1).over("conn") - 1)
    return gaps.filter(pl.col("unsent") > 0).select(at="low_at", unsent="unsent")


def _dense_lost_duplicates(slots: _Slots, due_sends: pl.DataFrame, answers: pl.DataFrame,
                           replies: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    answered = np.zeros(slots.size, bool)
    answered[slots.index(answers)] = True
    lost = due_sends["at"].to_numpy()[~answered[slots.index(due_sends)]]
    reply_slots = slots.index(replies)
    counts = np.bincount(reply_slots, minlength=slots.size)
    at = np.zeros(slots.size, np.int64)
    at[reply_slots] = replies["at"].to_numpy()
    twice = np.flatnonzero(counts > 1)
    return lost, np.repeat(at[twice], counts[twice] - 1)


def _dense_unsent(slots: _Slots, scheduled: pl.DataFrame) -> pl.DataFrame:
    """Numbers missing between recorded ones of the slice.

    Each connection's lowest and highest slot are recorded, so the next
    recorded slot after a missing one is always on the same connection.
    """
    recorded = np.zeros(slots.size, bool)
    where = slots.index(scheduled)
    recorded[where] = True
    at = np.zeros(slots.size, np.int64)
    at[where] = scheduled["at"].to_numpy()
    positions = np.arange(slots.size, dtype=np.int64)
    following = np.where(recorded, positions, slots.size)
    following = np.minimum.accumulate(following[::-1])[::-1]
    missing = np.flatnonzero(~recorded)
    return pl.DataFrame({"at": at[following[missing]],
                         "unsent": np.ones(len(missing), np.int64)})  # fmt: skip


def _hashed_lost_duplicates(due_sends: pl.DataFrame, answers: pl.DataFrame,
                            replies: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    keys = answers.select(k=_key())["k"].implode()
    lost = due_sends.filter(~_key().is_in(keys))["at"].to_numpy()
    duplicates = replies.filter(~_key().is_first_distinct())["at"].to_numpy()
    return lost, duplicates


def _hashed_unsent(scheduled: pl.DataFrame) -> pl.DataFrame:
    steps = scheduled.select("conn", "seq", "at").sort("conn", "seq").with_columns(
        unsent=pl.col("seq").diff().over("conn") - 1)
    return steps.filter(pl.col("unsent") > 0).select("at", "unsent")


def _reordered(sl: Slice) -> np.ndarray:
    """Due replies with a lower number than one that arrived before them on their connection."""
    replies = _with_seq(sl.rows("recv", due=False)).select("ts", "conn", "seq", "at", "due")
    if not replies["ts"].is_sorted():
        replies = replies.sort("ts", maintain_order=True)
    prior = pl.col("seq").cum_max().shift(1).over("conn")
    return replies.filter(pl.col("seq") < prior, "due")["at"].to_numpy()
