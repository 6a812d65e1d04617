"""The first, streaming pass over a run, and the time slices the analysis then reads.

Analysis never holds a whole run in memory. :func:`run_facts` reads a few
columns once with polars' streaming engine (bounded memory whatever the run's
size) and keeps what every later step needs: the time range, how late any row
can be after its message was due (``reach``), the first and last send, and one
row per connection. :func:`slices` then cuts the run into time slices of
whole windows holding about ``slice_rows`` events each, and :func:`load_slice`
reads one slice: the rows whose message was due in it (problem time ``at``)
or that were observed in it (``ts``), plus the replies of the next ``reach``
nanoseconds, which reordering needs. A run smaller than ``slice_rows`` is one
slice: the same code, all in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from streambench.capture.schema import KIND_NAMES

SECOND = 1_000_000_000
SLICE_ROWS = 4_000_000
"""Events per slice by default: a few hundred MB of working memory."""
KIND = pl.Enum(list(KIND_NAMES))
MESSAGE_KINDS = ("send", "recv", "error", "timeout")


def ts_ns() -> pl.Expr:
    return pl.col("ts").dt.epoch("ns")


def ts_between(low: int, high: int) -> pl.Expr:
    """``low <= ts < high`` (epoch ns) compared on the column itself, so a scan
    skips the row groups whose statistics lie outside."""
    def at(ns: int) -> pl.Expr:
        return pl.lit(ns, pl.Int64).cast(pl.Datetime("ns", "UTC"))

    return (pl.col("ts") >= at(low)) & (pl.col("ts") < at(high))


def problem_time() -> pl.Expr:
    """``at``: the message's intended send time when the row concerns one, else ``ts``."""
    return pl.coalesce(pl.col("intended_ns").cast(pl.Int64), ts_ns())


@dataclass(frozen=True)
class RunFacts:
    """What the streaming first pass learnt about a run (times in epoch ns)."""

    rows: int
    t0: int  # first event or due time, floored to a whole second
    t_end: int  # last event
    at_max: int  # last problem time of any row
    reach: int  # how long after its due time any row about a message came (>= 0)
    lead: int  # how long before its due time any row came (>= 0; clocks of several
    # processes, or a test's hand-made rows)
    first_send: int | None  # due time of the first and last send
    last_send: int | None
    first_sent: int | None  # observed (actual) time of the first and last send
    last_sent: int | None
    replies: int
    first_reply: int | None  # observed time of the first and last reply
    last_reply: int | None
    connections: pl.DataFrame  # conn, replies, first_reply, last_reply (those with replies)

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def origin(self, length_ns: int) -> int:
        """Start of window 0 for windows of ``length_ns``: clock-aligned."""
        return self.t0 - self.t0 % length_ns


def run_facts(events: pl.LazyFrame) -> RunFacts:
    """One streaming pass over ``events`` (the store's LazyFrame of one run)."""
    kind, ts, at = pl.col("kind"), ts_ns(), problem_time()
    send = kind == "send"
    totals = events.select(
        rows=pl.len(), ts_min=ts.min(), t_end=ts.max(), at_min=at.min(), at_max=at.max(),
        reach=(ts - pl.col("intended_ns")).max(), lead=(pl.col("intended_ns") - ts).max(),
        first_send=at.filter(send).min(), last_send=at.filter(send).max(),
        first_sent=ts.filter(send).min(), last_sent=ts.filter(send).max(),
    )  # fmt: skip
    conns = events.filter(kind == "recv").group_by("conn").agg(
        replies=pl.len(), first_reply=ts.min(), last_reply=ts.max())
    first_row, connections = pl.collect_all([totals, conns], engine="streaming")
    row = first_row.row(0, named=True)
    if not row["rows"]:
        return RunFacts(0, 0, 0, 0, 0, 0, None, None, None, None, 0, None, None,
                        connections.clear())
    first = min(row["ts_min"], row["at_min"])
    return RunFacts(
        rows=row["rows"], t0=first - first % SECOND, t_end=row["t_end"],
        at_max=row["at_max"],
        reach=max(int(row["reach"] or 0), 0), lead=max(int(row["lead"] or 0), 0),
        first_send=row["first_send"],
        last_send=row["last_send"], first_sent=row["first_sent"], last_sent=row["last_sent"],
        replies=int(connections["replies"].sum()),
        first_reply=_int_or_none(connections["first_reply"].min()),
        last_reply=_int_or_none(connections["last_reply"].max()),
        connections=connections.with_columns(pl.col("conn").cast(pl.Int32)).sort("conn"),
    )  # fmt: skip


def _int_or_none(value: object) -> int | None:
    """A column's min/max of epoch ns: an int, or None when the column is empty."""
    return value if isinstance(value, int) else None


def last_window(facts: RunFacts, length_ns: int) -> int:
    """Index of the last window any row falls in (by problem or observed time)."""
    origin = facts.origin(length_ns)
    return (max(facts.at_max, facts.t_end) - origin) // length_ns


def slices(facts: RunFacts, *, length_ns: int, slice_rows: int | None) -> list[tuple[int, int]]:
    """``[start, end)`` time slices of whole windows of ``length_ns``, about
    ``slice_rows`` events each (None: one slice), covering every window."""
    origin = facts.origin(length_ns)
    windows = last_window(facts, length_ns) + 1
    span_windows = windows if not slice_rows else max(1, int(
        slice_rows / max(facts.rows, 1) * windows))  # fmt: skip
    return [(origin + w * length_ns, origin + min(w + span_windows, windows) * length_ns)
            for w in range(0, windows, span_windows)]  # fmt: skip


def load_slice(events: pl.LazyFrame, columns: list[pl.Expr], *, facts: RunFacts, start: int,
               end: int) -> pl.DataFrame:  # fmt: skip
    """The rows a slice needs, with ``columns`` computed and two flags: ``due``
    (``at`` in the slice) and ``seen`` (``ts`` in the slice). Also loaded: rows
    due in the ``reach`` after the slice (replies that may have overtaken one
    of the slice's). ``columns`` must not be named ``due`` or ``seen``."""
    ts, at = ts_ns(), problem_time()
    reach, lead = facts.reach, facts.lead
    # a row comes at most lead before and reach after it was due: this ts range
    # holds every row the slice needs, and prunes row groups by their statistics
    ahead = reach + lead + 1  # replies due this long after the slice may have overtaken it
    wanted = ((at >= start) & (at < end + ahead)) | ((ts >= start) & (ts < end))
    return (
        events.filter(ts_between(start - lead, end + ahead + reach))
        .filter(wanted)
        .select(*columns, due=(at >= start) & (at < end), seen=(ts >= start) & (ts < end))
        .collect()
    )  # fmt: skip
