"""One time slice of a run, as the compact frame every per-window statistic reads.

:func:`read_slice` loads a slice (see :mod:`streambench.analyze.facts`) into a
small in-memory frame: integer nanosecond times, an Enum kind, no payloads,
and per row ``at``, the *problem time*: the message's intended send time
when the row concerns a message (send, recv, error, timeout), else ``ts``.
Windows that count latency, errors, timeouts and losses use ``at``, so a lost
reply is charged to the moment it was sent, not to when its timeout fired.

Reply payloads are not kept: ``Slice.plain_shapes`` lists the ``at`` of the
due replies with the run's dominant field set, ``Slice.odd_shapes`` the ``at``
and ``shape`` of every other due reply with a payload (see :mod:`.shapes`),
from a query of their own over the replies only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from streambench.analyze.facts import KIND, RunFacts, load_slice, problem_time, ts_ns
from streambench.analyze.shapes import NON_JSON, split_shapes


@dataclass(frozen=True)
class Slice:
    """The rows of one slice ``[start, end)`` (see :func:`read_slice`)."""

    frame: pl.DataFrame
    plain_shapes: pl.DataFrame  # at: due replies with the dominant field set
    odd_shapes: pl.DataFrame  # at, shape: due replies with another one
    start: int
    end: int
    _parts: dict[str, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)

    def rows(self, *kinds: str, due: bool = True) -> pl.DataFrame:
        """The rows of the given kinds (only those due in the slice unless
        ``due=False``), in capture order; split by kind once, then cached."""
        if not self._parts and self.frame.height:
            for (kind,), part in self.frame.partition_by("kind", as_dict=True).items():
                self._parts[str(kind)] = part
                self._parts[f"due:{kind}"] = part.filter("due")
        empty = self.frame.clear()
        parts = [self._parts.get(f"due:{kind}" if due else kind, empty) for kind in kinds]
        return parts[0] if len(parts) == 1 else pl.concat(parts)


def _columns(names: set[str], payloads: bool, *, start: int,
             end: int) -> list[pl.Expr]:  # fmt: skip
    kind = pl.col("kind").cast(KIND)

    def col(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in names else pl.lit(None, dtype)

    lag = pl.when(kind == "send").then((col("sent_ns", pl.Int64()) - pl.col("intended_ns")) / 1e6)
    columns = [
        kind.alias("kind"),
        ts_ns().alias("ts"),
        problem_time().alias("at"),
        col("conn", pl.Int32()).alias("conn"),
        col("seq", pl.Int64()).alias("seq"),
        col("latency_ms", pl.Float64()).alias("latency_ms"),
        lag.alias("lag_ms"),
        pl.when(kind.is_in(["error", "timeout"])).then(col("error", pl.String())).alias("error"),
    ]
    if payloads and "payload" in names:
        due = (problem_time() >= start) & (problem_time() < end)
        # the regex needs a closing brace, so an unclosed payload is odd: it is read as
        # <non-json> when fingerprinted (split_shapes), not tested row by row here
        columns.append(pl.when((kind == "recv") & due).then(pl.col("payload")).alias("_payload"))
    return columns


def reply_payload() -> pl.Expr:
    """Reply payloads, a JSON object that never closes read as ``<non-json>``.

    A truncated object (``{"cid":"0-3","seq":3``, what a ``malformed`` fault
    echoes back) still has readable keys, so its field set would look like the
    normal one and schema drift could not see it.
    """
    payload = pl.col("payload")
    unclosed = payload.str.starts_with("{") & ~payload.str.strip_chars_end().str.ends_with("}")
    return pl.when(unclosed).then(pl.lit(NON_JSON)).otherwise(payload)


def read_slice(events: pl.LazyFrame, *, facts: RunFacts, start: int, end: int,
               skeleton: str | None, payloads: bool = True) -> Slice:  # fmt: skip
    """Load the slice ``[start, end)`` of ``events`` as a :class:`Slice`.

    ``skeleton`` is the run's dominant reply skeleton
    (:func:`streambench.analyze.shapes.dominant_skeleton`); ``payloads=False``
    skips schema fingerprints (the costliest column).
    """
    names = set(events.collect_schema().names())
    columns = _columns(names, payloads, start=start, end=end)
    frame, plain, odd = split_shapes(load_slice(events, columns, facts=facts, start=start,
                                                end=end), skeleton)  # fmt: skip
    return Slice(frame, plain, odd, start, end)
