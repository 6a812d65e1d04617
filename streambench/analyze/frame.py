"""One pass over the events: the compact, flagged frame every analysis reads.

:func:`prepare` collects the store's events once into a small in-memory frame
(integer nanosecond times, an Enum kind, no payloads) with, per row:

``at``
    the *problem time*: the message's intended send time when the row concerns
    a message (send, recv, error, timeout), else ``ts``. Windows that count
    latency, errors, timeouts and losses use ``at``, so a lost reply is charged
    to the moment it was sent, not to when its timeout fired.
``lost``
    on send rows: no reply, error or timeout was ever recorded for that
    ``(conn, seq)`` although the timeout had passed before the capture ended;
    on timeout rows: always (a timeout is a lost reply).
``duplicate`` / ``out_of_order``
    on recv rows: a second reply for the same ``(conn, seq)``; a reply whose
    ``seq`` is lower than one already received on its connection.
``shape``
    on recv rows with a payload: the schema fingerprint, the sorted set of JSON
    keys (``"cid,seq,text"``), or ``<non-json>`` when the payload is not an
    object.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from streambench.capture.schema import KIND_NAMES

KIND = pl.Enum(list(KIND_NAMES))
NON_JSON = "<non-json>"
_KEY_PATTERN = r'"(?:[^"\\]|\\.)*"\s*:'
_SEQ_BITS = 40  # (conn << 40) | seq is one int64 key per message


@dataclass(frozen=True)
class Prepared:
    """The compact event frame plus the run's time origin (epoch ns)."""

    frame: pl.DataFrame
    t0: int  # first event, floored to a whole second
    t_end: int  # last event
    timeout_ns: int

    def of_kind(self, kind: str) -> pl.DataFrame:
        return self.frame.filter(pl.col("kind") == kind)


def shape_expr(payload: pl.Expr) -> pl.Expr:
    """Schema fingerprint of a JSON payload string: its sorted, distinct keys."""
    keys = payload.str.extract_all(_KEY_PATTERN).list.eval(
        pl.element().str.strip_chars_end(": \t").str.strip_chars('"')
    )
    is_object = payload.str.starts_with("{")
    return (
        pl.when(is_object)
        .then(keys.list.unique().list.sort().list.join(","))
        .otherwise(pl.lit(NON_JSON))
    )


def _columns(events: pl.LazyFrame, *, payloads: bool) -> list[pl.Expr]:
    names = set(events.collect_schema().names())
    ts = pl.col("ts").dt.epoch("ns")
    kind = pl.col("kind").cast(KIND)

    def col(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in names else pl.lit(None, dtype)

    lag = pl.when(kind == "send").then((col("sent_ns", pl.Int64) - pl.col("intended_ns")) / 1e6)
    shape = pl.lit(None, pl.String)
    if payloads and "payload" in names:
        shape = pl.when(kind == "recv").then(shape_expr(pl.col("payload")))
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
        shape.cast(pl.Categorical).alias("shape"),
    ]


def _message_key() -> pl.Expr:
    return (pl.col("conn").cast(pl.Int64) * (1 << _SEQ_BITS)) + pl.col("seq")


def _flag(frame: pl.DataFrame, timeout_ns: int, t_end: int) -> pl.DataFrame:
    kind = pl.col("kind")
    key = _message_key()
    answered = frame.filter(kind.is_in(["recv", "error", "timeout"]), pl.col("seq").is_not_null())
    answered_keys = answered.select(key.alias("k"))["k"]
    unanswered = (
        (kind == "send") & ~key.is_in(answered_keys.implode()) & (pl.col("at") < t_end - timeout_ns)
    )
    frame = frame.with_columns(lost=unanswered | (kind == "timeout"))
    # Reply order is judged per connection in arrival order.
    frame = frame.sort("ts", maintain_order=True)
    is_recv = kind == "recv"
    recv_key = pl.when(is_recv).then(key)
    duplicate = is_recv & ~recv_key.is_first_distinct() & recv_key.is_not_null()
    seen = pl.when(is_recv).then(pl.col("seq")).cum_max().forward_fill()
    prior_max = seen.shift(1).over("conn")
    return frame.with_columns(
        duplicate=duplicate,
        out_of_order=is_recv & (pl.col("seq") < prior_max).fill_null(False),
    )


def prepare(events: pl.LazyFrame, *, timeout_s: float = 5.0, payloads: bool = True) -> Prepared:
    """Collect ``events`` once into the flagged frame (see the module docstring).

    ``timeout_s`` is the scenario's reply timeout: a send with no recorded
    answer counts as lost only if the capture lasted that long after it.
    ``payloads=False`` skips schema fingerprints (the costliest column).
    """
    frame = events.select(_columns(events, payloads=payloads)).collect()
    if frame.height == 0:
        return Prepared(frame.with_columns(
            lost=pl.lit(False), duplicate=pl.lit(False), out_of_order=pl.lit(False)
        ), 0, 0, int(timeout_s * 1e9))  # fmt: skip
    t_first = int(min(frame["ts"].min(), frame["at"].min()))  # type: ignore[type-var,arg-type]
    t_end = int(frame["ts"].max())  # type: ignore[arg-type]
    timeout_ns = int(timeout_s * 1e9)
    t0 = t_first - t_first % 1_000_000_000
    return Prepared(_flag(frame, timeout_ns, t_end), t0, t_end, timeout_ns)
