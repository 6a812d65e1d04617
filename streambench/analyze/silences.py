"""Silences: stretches with no reply at all, for the whole run and per connection.

The ``stall`` rules judge silences longer than ``max(min_silence, factor x the
usual gap between replies)`` while sends waited. The usual gap is the mean
one, ``(last reply - first reply) / (replies - 1)``, for the run and for each
connection, known from the first pass (:mod:`streambench.analyze.facts`), so
the slices only keep the few gaps that could matter: longer than a floor
(``max(floor, 5 x usual)``, below any default rule's limit). A rule asking for
less gets them from a pass of its own (:meth:`Metrics.silences`).

A silence ends at a reply or at the end of the capture; ``pending`` counts the
sends due after it began whose reply was due (``typical``, the run's median
latency, after sending) before it ended, counted by one more streaming query
over the sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from streambench.analyze.facts import RunFacts, problem_time
from streambench.analyze.frame import Slice

RUN_FLOOR_NS = 100_000_000
CONN_FLOOR_NS = 1_000_000_000
FACTOR_FLOOR = 5.0
_SCHEMA = {"conn": pl.Int32, "start": pl.Int64, "end": pl.Int64}


@dataclass(frozen=True)
class Floors:
    """The shortest silences kept: run-wide and per connection (ns), and the factor."""

    run_ns: int = RUN_FLOOR_NS
    conn_ns: int = CONN_FLOOR_NS
    factor: float = FACTOR_FLOOR

    def covers(self, *, scope: str, min_silence_ns: float, factor: float) -> bool:
        floor = self.run_ns if scope == "run" else self.conn_ns
        return min_silence_ns >= floor and factor >= self.factor


DEFAULT_FLOORS = Floors()


@dataclass
class SilenceCarry:
    """The last reply seen, run-wide and per connection, before the next slice."""

    last: int | None = None
    last_by_conn: dict[int, int] = field(default_factory=dict)


def usual_gaps(facts: RunFacts) -> tuple[float, pl.DataFrame]:
    """The run's mean gap between replies (ns; inf with fewer than two) and each
    connection's (``conn``, ``usual``)."""
    run = ((facts.last_reply - facts.first_reply) / (facts.replies - 1)
           if facts.replies > 1 else float("inf"))  # type: ignore[operator]
    conns = facts.connections.select(
        "conn", usual=pl.when(pl.col("replies") > 1).then(
            (pl.col("last_reply") - pl.col("first_reply")) / (pl.col("replies") - 1))
        .otherwise(float("inf")))  # fmt: skip
    return run, conns


def slice_silences(sl: Slice, carry: SilenceCarry, *, floors: Floors, usual: float,
                   usual_by_conn: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """Gaps between replies observed in the slice (and the one before it) longer
    than the floors: ``conn`` (null: run-wide), ``start``, ``end``."""
    replies = sl.frame.filter(pl.col("kind") == "recv", "seen").select("ts", "conn")
    if not replies["ts"].is_sorted():
        replies = replies.sort("ts", maintain_order=True)
    if replies.height == 0:
        return pl.DataFrame(schema=_SCHEMA)
    times = replies["ts"]
    previous = times.shift(1)
    if carry.last is not None:
        previous[0] = carry.last
    run_floor = max(floors.run_ns, floors.factor * usual)
    run = pl.DataFrame({"start": previous, "end": times}).filter(
        pl.col("end") - pl.col("start") > run_floor)
    carry.last = int(times[-1])
    known = pl.DataFrame({"conn": list(carry.last_by_conn),
                          "last": list(carry.last_by_conn.values())},
                         schema={"conn": pl.Int32, "last": pl.Int64})  # fmt: skip
    per_conn = (
        replies.with_columns(start=pl.col("ts").shift(1).over("conn"))
        .join(known, on="conn", how="left")
        .with_columns(start=pl.coalesce("start", "last"))
        .join(usual_by_conn, on="conn", how="left")
        .filter(pl.col("ts") - pl.col("start") > pl.max_horizontal(
            pl.lit(float(floors.conn_ns)), floors.factor * pl.col("usual")))
        .select("conn", "start", end="ts")
    )  # fmt: skip
    last = replies.group_by("conn").agg(pl.col("ts").last())
    carry.last_by_conn.update(zip(last["conn"].to_list(), last["ts"].to_list(), strict=True))
    return pl.concat([run.select(pl.lit(None, pl.Int32).alias("conn"), "start", "end"),
                      per_conn.cast(_SCHEMA)])  # type: ignore[arg-type]


def tails(carry: SilenceCarry, *, end: int, floors: Floors, usual: float,
          usual_by_conn: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """Silences from the last reply to the end of the capture."""
    rows = []
    if carry.last is not None and end - carry.last > max(floors.run_ns, floors.factor * usual):
        rows.append({"conn": None, "start": carry.last, "end": end})
    usual_of = dict(usual_by_conn.iter_rows())
    for conn, last in carry.last_by_conn.items():
        if end - last > max(floors.conn_ns, floors.factor * usual_of.get(conn, float("inf"))):
            rows.append({"conn": conn, "start": last, "end": end})
    return pl.DataFrame(rows, schema=_SCHEMA)


def with_pending(events: pl.LazyFrame, silences: pl.DataFrame, *, typical_ns: float
                 ) -> pl.DataFrame:  # fmt: skip
    """``silences`` with ``pending``: sends due after each began and answerable
    (``typical_ns`` after) before it ended."""
    # due in (start, stop) for integers is [start + 1, stop): bounds of search_sorted
    silences = silences.with_row_index("id").with_columns(
        first=pl.col("start") + 1,
        stop=pl.max_horizontal(pl.col("end") - int(typical_ns), pl.col("start") + 1))
    sends = events.filter(pl.col("kind") == "send").select(
        pl.col("conn").cast(pl.Int32), at=problem_time())
    run = silences.filter(pl.col("conn").is_null()).sort("start")
    parts = []
    if run.height:
        bounds = run.select(pl.concat_list("first", "stop")).to_series().explode()
        per = (sends.select(i=pl.lit(bounds).search_sorted(pl.col("at"), side="right"))
               .filter(pl.col("i") % 2 == 1).group_by("i").len())  # fmt: skip
        ids = pl.DataFrame({"i": pl.int_range(0, run.height, eager=True) * 2 + 1,
                            "id": run["id"]}, schema={"i": pl.UInt32, "id": pl.UInt32})
        parts.append(per.collect(engine="streaming").join(ids, on="i").select("id", "len"))
    conns = silences.filter(pl.col("conn").is_not_null())
    if conns.height:
        per = (sends.join(conns.lazy().select("conn", "id", "start", "stop"), on="conn")
               .filter(pl.col("at") > pl.col("start"), pl.col("at") < pl.col("stop"))
               .group_by("id").len())  # fmt: skip
        parts.append(per.collect(engine="streaming"))
    counts = pl.concat(parts) if parts else pl.DataFrame(schema={"id": pl.UInt32,
                                                                 "len": pl.UInt32})
    return (silences.join(counts, on="id", how="left")
            .select("conn", "start", "end", pending=pl.col("len").fill_null(0)))  # fmt: skip
