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

from dataclasses import dataclass

import polars as pl

from streambench.analyze.facts import RunFacts, problem_time, ts_between
from streambench.analyze.frame import Slice

RUN_FLOOR_NS = 100_000_000
CONN_FLOOR_NS = 1_000_000_000
FACTOR_FLOOR = 5.0
_SCHEMA = pl.Schema({"conn": pl.Int32, "start": pl.Int64, "end": pl.Int64})


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


@dataclass(frozen=True)
class SliceSilences:
    """A slice's silences between its own replies, and its first and last reply
    per connection (``conn``, ``first``, ``last``), to settle the silences that
    span slices (:func:`merge_silences`)."""

    inside: pl.DataFrame  # conn (null: run-wide), start, end
    edges: pl.DataFrame  # conn, first, last


def usual_gaps(facts: RunFacts) -> tuple[float, pl.DataFrame]:
    """The run's mean gap between replies (ns; inf with fewer than two) and each
    connection's (``conn``, ``usual``)."""
    first, last = facts.first_reply, facts.last_reply
    run = ((last - first) / (facts.replies - 1)
           if facts.replies > 1 and first is not None and last is not None else float("inf"))
    conns = facts.connections.select(
        "conn", usual=pl.when(pl.col("replies") > 1).then(
            (pl.col("last_reply") - pl.col("first_reply")) / (pl.col("replies") - 1))
        .otherwise(float("inf")))  # fmt: skip
    return run, conns


def _longer(floor_ns: float, factor: float) -> pl.Expr:
    """Gaps (``end - start``) longer than ``max(floor, factor x usual)``."""
    limit = pl.max_horizontal(pl.lit(float(floor_ns)), factor * pl.col("usual"))
    return pl.col("end") - pl.col("start") > limit


def slice_silences(sl: Slice, *, floors: Floors, usual: float, usual_by_conn: pl.DataFrame
                   ) -> SliceSilences:  # fmt: skip
    """Gaps longer than the floors between replies observed in the slice."""
    replies = sl.frame.filter(pl.col("kind") == "recv", "seen").select("ts", "conn")
    if not replies["ts"].is_sorted():
        replies = replies.sort("ts", maintain_order=True)
    run = replies.select(pl.lit(None, pl.Int32).alias("conn"), start=pl.col("ts").shift(1),
                         end="ts", usual=pl.lit(usual))  # fmt: skip
    per_conn = replies.select("conn", start=pl.col("ts").shift(1).over("conn"), end="ts").join(
        usual_by_conn, on="conn", how="left")
    inside = pl.concat([run.filter(_longer(floors.run_ns, floors.factor)).drop("usual"),
                        per_conn.filter(_longer(floors.conn_ns, floors.factor)).drop("usual")])
    edges = replies.group_by("conn").agg(first=pl.col("ts").first(), last=pl.col("ts").last())
    return SliceSilences(inside.cast(_SCHEMA), edges)


def merge_silences(parts: list[SliceSilences], *, end: int, floors: Floors, usual: float,
                   usual_by_conn: pl.DataFrame) -> pl.DataFrame:  # fmt: skip
    """All silences (``conn``, ``start``, ``end``): each slice's own, those from one
    slice's last reply to a later slice's first (run-wide and per connection), and
    those from the last reply to the end of the capture (``end``)."""
    schema = pl.Schema({"conn": pl.Int32, "first": pl.Int64, "last": pl.Int64, "part": pl.Int64})
    rows = [p.edges.with_columns(part=pl.lit(i, pl.Int64)) for i, p in enumerate(parts)]
    edges = pl.concat([r.cast(schema) for r in rows]) if rows else pl.DataFrame(schema=schema)
    closing = edges.group_by("conn").agg(part=pl.lit(len(parts), pl.Int64)).with_columns(
        first=pl.lit(end, pl.Int64), last=pl.lit(None, pl.Int64))
    per_conn = pl.concat([edges, closing.select(edges.columns)]).sort("conn", "part")
    per_conn = per_conn.select(
        "conn", start=pl.col("last").shift(1).over("conn"), end="first").join(
        usual_by_conn, on="conn", how="left")  # fmt: skip
    whole = edges.group_by("part").agg(pl.col("first").min(), pl.col("last").max())
    whole = pl.concat([whole, pl.DataFrame({"part": [len(parts)], "first": [end],
                                            "last": [None]}, schema=whole.schema)]).sort("part")
    run = whole.select(pl.lit(None, pl.Int32).alias("conn"), start=pl.col("last").shift(1),
                       end="first", usual=pl.lit(usual))  # fmt: skip
    between = pl.concat([run.filter(_longer(floors.run_ns, floors.factor)).drop("usual"),
                         per_conn.filter(_longer(floors.conn_ns, floors.factor)).drop("usual")])
    found = pl.concat([*(p.inside for p in parts), between.cast(_SCHEMA)])
    return found.sort("start", "conn", nulls_last=False)


def with_pending(events: pl.LazyFrame, silences: pl.DataFrame, *, typical_ns: float,
                 facts: RunFacts) -> pl.DataFrame:  # fmt: skip
    """``silences`` with ``pending``: sends due after each began and answerable
    (``typical_ns`` after) before it ended. Reads only the sends around them:
    silences close together are counted by one query, each query reading the
    row groups of its stretch of time."""
    # due in (start, stop) for integers is [start + 1, stop): bounds of search_sorted
    silences = silences.with_row_index("id").with_columns(
        first=pl.col("start") + 1,
        stop=pl.max_horizontal(pl.col("end") - int(typical_ns), pl.col("start") + 1))
    queries = [_pending(events, group, facts) for group in _clusters(silences)]
    counts = pl.concat(pl.collect_all(queries, engine="streaming")) if queries else (
        pl.DataFrame(schema={"id": pl.UInt32, "len": pl.UInt32}))
    return (silences.join(counts.group_by("id").agg(pl.col("len").sum()), on="id", how="left")
            .select("conn", "start", "end", pending=pl.col("len").fill_null(0)))  # fmt: skip


_CLUSTER_GAP_NS = 60 * 1_000_000_000  # silences closer than this share one query


def _clusters(silences: pl.DataFrame) -> list[pl.DataFrame]:
    ordered = silences.sort("first")
    group = (pl.col("first") - pl.col("stop").cum_max().shift(1) > _CLUSTER_GAP_NS).cum_sum()
    labelled = ordered.with_columns(cluster=group.fill_null(0))
    return [part for _, part in labelled.group_by("cluster", maintain_order=True)]


def _pending(events: pl.LazyFrame, silences: pl.DataFrame, facts: RunFacts) -> pl.LazyFrame:
    """Sends pending in each of ``silences`` (``id``, ``len``), as one lazy query."""
    low = int(silences["first"].min()) - facts.lead  # type: ignore[arg-type]
    high = int(silences["stop"].max()) + facts.reach + 1  # type: ignore[arg-type]
    sends = events.filter(ts_between(low, high)).filter(pl.col("kind") == "send").select(
        pl.col("conn").cast(pl.Int32), at=problem_time())
    parts = []
    run = silences.filter(pl.col("conn").is_null()).sort("start")
    if run.height:
        bounds = run.select(pl.concat_list("first", "stop")).to_series().explode()
        ids = pl.LazyFrame({"i": pl.int_range(0, run.height, eager=True) * 2 + 1,
                            "id": run["id"]}, schema={"i": pl.UInt32, "id": pl.UInt32})
        parts.append(sends.select(i=pl.lit(bounds).search_sorted(pl.col("at"), side="right"))
                     .filter(pl.col("i") % 2 == 1).group_by("i").len()
                     .join(ids, on="i").select("id", "len"))  # fmt: skip
    conns = silences.filter(pl.col("conn").is_not_null())
    if conns.height:
        parts.append(sends.join(conns.lazy().select("conn", "id", "start", "stop"), on="conn")
                     .filter(pl.col("at") > pl.col("start"), pl.col("at") < pl.col("stop"))
                     .group_by("id").len())  # fmt: skip
    return pl.concat(parts)
