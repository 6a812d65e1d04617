"""One pass over the events: the compact frame every analysis reads.

:func:`prepare` collects the store's events once into a small in-memory frame
(integer nanosecond times, an Enum kind, no payloads) with, per row, ``at``:
the *problem time*, the message's intended send time when the row concerns a
message (send, recv, error, timeout), else ``ts``. Windows that count latency,
errors, timeouts and losses use ``at``, so a lost reply is charged to the
moment it was sent, not to when its timeout fired.

Beside it, three small frames (``at``, ``conn``, ``seq``) list the exceptions:

``lost``
    timeouts, and sends for which no reply, error or timeout was ever recorded
    although the timeout had passed before the capture ended;
``duplicates``
    replies for a ``(conn, seq)`` that had already been answered;
``reordered``
    replies whose ``seq`` is lower than one already received on their
    connection (in arrival order).

Schema fingerprints (shapes) of reply payloads are the sorted JSON keys joined
by commas (``"cid,seq,text"``; nested keys included), or ``<non-json>``. The
frame's boolean ``plain_shape`` marks replies with the run's dominant shape
(``Prepared.plain_shape``); ``odd_shapes`` lists the ``at`` and ``shape`` of
every other reply with a payload. See :mod:`.shapes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import polars as pl

from streambench.analyze.shapes import dominant_skeleton, fields_of, shape_columns, split_shapes
from streambench.capture.schema import KIND_NAMES

KIND = pl.Enum(list(KIND_NAMES))
_SEQ_BITS = 40  # (conn << 40) | seq is one int64 key per message


@dataclass(frozen=True)
class Prepared:
    """The compact event frame, its exception frames and the run's time origin."""

    frame: pl.DataFrame
    lost: pl.DataFrame
    duplicates: pl.DataFrame
    reordered: pl.DataFrame
    plain_shape: str | None
    odd_shapes: pl.DataFrame
    t0: int  # first event, floored to a whole second (epoch ns)
    t_end: int  # last event (epoch ns)
    timeout_ns: int

    _parts: dict[str, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def rows(self, *kinds: str) -> pl.DataFrame:
        """The rows of the given kinds, in capture order (split once, then cached)."""
        if not self._parts and self.frame.height:
            for (kind,), part in self.frame.partition_by("kind", as_dict=True).items():
                self._parts[str(kind)] = part
        empty = self.frame.clear()
        parts = [self._parts.get(kind, empty) for kind in kinds]
        return parts[0] if len(parts) == 1 else pl.concat(parts)

    def origin(self, length_ns: int) -> int:
        """Start of window 0 for windows of ``length_ns``: aligned to the clock
        (a multiple of the length since the epoch), so runs line up."""
        return self.t0 - self.t0 % length_ns


def _columns(events: pl.LazyFrame) -> tuple[list[pl.Expr], set[str]]:
    names = set(events.collect_schema().names())
    ts = pl.col("ts").dt.epoch("ns")
    kind = pl.col("kind").cast(KIND)

    def col(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in names else pl.lit(None, dtype)

    lag = pl.when(kind == "send").then((col("sent_ns", pl.Int64) - pl.col("intended_ns")) / 1e6)
    return [
        kind.alias("kind"),
        ts.alias("ts"),
        pl.coalesce(col("intended_ns", pl.Int64), ts).alias("at"),
        col("conn", pl.Int32).alias("conn"),
        col("seq", pl.Int64).alias("seq"),
        col("latency_ms", pl.Float64).alias("latency_ms"),
        lag.alias("lag_ms"),
        pl.when(kind.is_in(["error", "timeout"])).then(col("error", pl.String)).alias("error"),
        col("status", pl.String).alias("status"),
        # A second reply to a message already answered is recorded by the clients as
        # an "unmatched" error row (it resolves nothing); its cid ("<conn>-<seq>")
        # says which message it echoed, so duplicates are counted from it here.
        pl.when((kind == "error") & (col("status", pl.String) == "unmatched"))
        .then(col("cid", pl.String).str.extract(r"-(\d+)$").cast(pl.Int64))
        .alias("echo_seq"),
    ], names


def _key() -> pl.Expr:
    return (pl.col("conn").cast(pl.Int64) * (1 << _SEQ_BITS)) + pl.col("seq")


def _lost(prep: Prepared) -> pl.DataFrame:
    due = prep.rows("send").filter(pl.col("at") < prep.t_end - prep.timeout_ns)
    answered = prep.rows("recv", "error", "timeout").select(k=_key()).drop_nulls()
    missing = due.filter(~_key().is_in(answered["k"].implode()))
    timeouts = prep.rows("timeout")
    return pl.concat([missing.select("at", "conn", "seq"), timeouts.select("at", "conn", "seq")])


def _reply_order(prep: Prepared) -> tuple[pl.DataFrame, pl.DataFrame]:
    replies = prep.rows("recv").filter(pl.col("seq").is_not_null())
    replies = replies.select("ts", "at", "conn", "seq")
    if not replies["ts"].is_sorted():
        replies = replies.sort("ts", maintain_order=True)
    duplicates = replies.filter(~_key().is_first_distinct())
    echoes = prep.rows("error").filter(pl.col("echo_seq").is_not_null())
    if echoes.height:
        echoes = echoes.select("ts", "at", "conn", seq=pl.col("echo_seq"))
        answered = replies.select(k=_key())["k"].implode()
        duplicates = pl.concat([duplicates, echoes.filter(_key().is_in(answered))])
    prior_max = pl.col("seq").cum_max().shift(1).over("conn")
    reordered = replies.filter(pl.col("seq") < prior_max)
    return duplicates.drop("ts"), reordered.drop("ts")


def prepare(events: pl.LazyFrame, *, timeout_s: float = 5.0, payloads: bool = True) -> Prepared:
    """Collect ``events`` once into the compact frame (see the module docstring).

    ``timeout_s`` is the scenario's reply timeout: a send with no recorded
    answer counts as lost only if the capture lasted that long after it.
    ``payloads=False`` skips schema fingerprints (the costliest column).
    """
    columns, names = _columns(events)
    skeleton = dominant_skeleton(events) if payloads and "payload" in names else None
    if payloads and "payload" in names:
        columns += shape_columns(skeleton)
    frame, odd_shapes = split_shapes(events.select(columns).collect(), skeleton)
    plain = fields_of(skeleton) if skeleton else None
    timeout_ns = int(timeout_s * 1e9)
    if frame.height == 0:
        empty = pl.DataFrame(schema={"at": pl.Int64, "conn": pl.Int32, "seq": pl.Int64})
        return Prepared(frame, empty, empty, empty, plain, odd_shapes, 0, 0, timeout_ns)
    t_first = int(min(frame["ts"].min(), frame["at"].min()))  # type: ignore[type-var,arg-type]
    t_end = int(frame["ts"].max())  # type: ignore[arg-type]
    empty = pl.DataFrame(schema={"at": pl.Int64, "conn": pl.Int32, "seq": pl.Int64})
    prep = Prepared(
        frame,
        empty,
        empty,
        empty,
        plain,
        odd_shapes,
        t0=t_first - t_first % 1_000_000_000,
        t_end=t_end,
        timeout_ns=timeout_ns,
    )
    duplicates, reordered = _reply_order(prep)
    return replace(prep, lost=_lost(prep), duplicates=duplicates, reordered=reordered,
                   _parts=prep._parts)  # fmt: skip
