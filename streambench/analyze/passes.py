"""The slice pass: every per-window table of a run, one time slice at a time.

:func:`slice_pass` reads the run slice by slice (see
:mod:`streambench.analyze.facts`) and builds, for windows of one length, what
was asked for: the per-window table, replies per payload field set, error
texts per window, and reply silences. Memory holds one slice and the small
tables, whatever the size of the run; a run smaller than a slice is read once,
whole, by the very same code, so streaming and in-memory results are the same.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import polars as pl

from streambench.analyze.facts import RunFacts, problem_time, slices
from streambench.analyze.frame import Slice, read_slice
from streambench.analyze.matching import find_exceptions
from streambench.analyze.quantiles import bucket_counts
from streambench.analyze.silences import (
    DEFAULT_FLOORS,
    Floors,
    merge_silences,
    slice_silences,
    usual_gaps,
)
from streambench.analyze.windows import (
    Grid,
    finish_windows,
    shape_windows,
    slice_windows,
)

WINDOWS, SHAPES, ERRORS, SILENCES = "windows", "shapes", "errors", "silences"
VALUES = "values"  # value counts of latencies and schedule lags (see quantiles.bucket_counts)


@dataclass(frozen=True)
class PassOptions:
    """How to read a run: fixed for all the passes over it."""

    timeout_ns: int
    slice_rows: int | None
    skeleton: str | None
    payloads: bool
    echoes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # at of echo dups


@dataclass
class PassResult:
    windows: pl.DataFrame | None = None
    shapes: pl.DataFrame | None = None  # w, shape, count
    schemas: pl.DataFrame | None = None  # shape, count, first_seen, last_seen
    errors: pl.DataFrame | None = None  # w, kind, error, count
    silences: pl.DataFrame | None = None  # conn (null: run-wide), start, end
    latency_counts: list[pl.DataFrame] = field(default_factory=list)  # per slice
    lag_counts: list[pl.DataFrame] = field(default_factory=list)


def _error_texts(sl: Slice, grid: Grid) -> pl.DataFrame:
    rows = sl.rows("error", "timeout").filter(pl.col("error").is_not_null())
    return rows.group_by(grid.of("at"), pl.col("kind").cast(pl.String), "error").agg(
        count=pl.len())


def _schema_rows(sl: Slice, plain: str | None) -> pl.DataFrame:
    shaped = pl.concat([
        sl.plain_shapes.select("at", shape=pl.lit(plain, pl.String)),
        sl.odd_shapes.select("at", "shape"),
    ])  # fmt: skip
    return shaped.group_by("shape").agg(count=pl.len(), first_seen=pl.col("at").min(),
                                        last_seen=pl.col("at").max())  # fmt: skip


WORKERS = 2  # slices read and worked on at once (polars and numpy release the GIL)


@dataclass(frozen=True)
class _Job:
    """What one slice needs besides its bounds."""

    events: pl.LazyFrame
    facts: RunFacts
    options: PassOptions
    grid: Grid
    want: frozenset[str]
    plain: str | None
    floors: Floors
    usual: tuple[float, pl.DataFrame]


def _one_slice(job: _Job, bounds: tuple[int, int]) -> dict[str, Any]:
    start, end = bounds
    options, want = job.options, job.want
    sl = read_slice(job.events, facts=job.facts, start=start, end=end,
                    skeleton=options.skeleton, payloads=options.payloads and SHAPES in want)
    found: dict[str, Any] = {}
    if WINDOWS in want:
        exc = find_exceptions(sl, t_end=job.facts.t_end, timeout_ns=options.timeout_ns)
        found[WINDOWS] = slice_windows(sl, exc, grid=job.grid, facts=job.facts)
    if SHAPES in want:
        found[SHAPES] = shape_windows(sl, job.grid, job.plain)
        found["schemas"] = _schema_rows(sl, job.plain)
    if ERRORS in want:
        found[ERRORS] = _error_texts(sl, job.grid)
    if VALUES in want:
        found[VALUES] = (bucket_counts(sl.rows("recv").select("latency_ms")),
                         bucket_counts(sl.rows("send").select("lag_ms")))
    if SILENCES in want:
        usual, usual_by_conn = job.usual
        found[SILENCES] = slice_silences(sl, floors=job.floors, usual=usual,
                                         usual_by_conn=usual_by_conn)  # fmt: skip
    return found


def slice_pass(events: pl.LazyFrame, facts: RunFacts, options: PassOptions, *, window_s: float,
               want: frozenset[str], plain: str | None = None,
               floors: Floors = DEFAULT_FLOORS) -> PassResult:  # fmt: skip
    """One pass over ``events`` building the tables named in ``want`` for windows
    of ``window_s`` seconds (``plain``: the dominant field set's fingerprint).

    Slices are independent (what crosses them is settled when the results are
    merged, in time order), so :data:`WORKERS` of them are worked on at once.
    """
    length = int(window_s * 1e9)
    grid = Grid(length, facts.origin(length))
    job = _Job(events, facts, options, grid, want, plain, floors, usual_gaps(facts))
    bounds = slices(facts, length_ns=length, slice_rows=options.slice_rows)
    if len(bounds) == 1:
        results = [_one_slice(job, bounds[0])]
    else:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="streambench-slice") as pool:
            results = list(pool.map(partial(_one_slice, job), bounds))
    return _merge(results, job, window_s=window_s)


def _merge(results: list[dict[str, Any]], job: _Job, *, window_s: float) -> PassResult:
    want, grid, facts = job.want, job.grid, job.facts
    result = PassResult()
    if WINDOWS in want:
        table = finish_windows([r[WINDOWS] for r in results], grid=grid, facts=facts,
                               window_s=window_s)  # fmt: skip
        result.windows = _with_echoes(table, job.options.echoes, grid)
    if SHAPES in want:
        result.shapes = _concat([r[SHAPES] for r in results], pl.Schema({
            "w": pl.Int64, "shape": pl.String, "count": pl.UInt32})).sort("w", "shape")
        result.schemas = _merge_schemas([r["schemas"] for r in results])
    if ERRORS in want:
        result.errors = _concat([r[ERRORS] for r in results], pl.Schema({
            "w": pl.Int64, "kind": pl.String, "error": pl.String, "count": pl.UInt32}))
    if VALUES in want:
        result.latency_counts = [r[VALUES][0] for r in results]
        result.lag_counts = [r[VALUES][1] for r in results]
    if SILENCES in want:
        usual, usual_by_conn = job.usual
        result.silences = merge_silences([r[SILENCES] for r in results], end=facts.t_end,
                                         floors=job.floors, usual=usual,
                                         usual_by_conn=usual_by_conn)  # fmt: skip
    return result


def _concat(parts: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    frames = [p.cast(schema) for p in parts if p.height]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def _merge_schemas(parts: list[pl.DataFrame]) -> pl.DataFrame:
    schema = pl.Schema({"shape": pl.String, "count": pl.UInt32, "first_seen": pl.Int64,
                        "last_seen": pl.Int64})  # fmt: skip
    return _concat(parts, schema).group_by("shape").agg(
        pl.col("count").sum(), pl.col("first_seen").min(), pl.col("last_seen").max())


def _with_echoes(table: pl.DataFrame, echoes: np.ndarray, grid: Grid) -> pl.DataFrame:
    """Add duplicates the client recorded as ``unmatched`` echoes (at their own time)."""
    if len(echoes) == 0:
        return table
    extra = pl.DataFrame({"w": grid.index(echoes)}).group_by("w").agg(extra=pl.len())
    return (table.join(extra, on="w", how="left")
            .with_columns((pl.col("duplicates") + pl.col("extra").fill_null(0))
                          .cast(pl.UInt32)).drop("extra"))  # fmt: skip


def echo_duplicates(events: pl.LazyFrame) -> np.ndarray:
    """Problem times of ``unmatched`` error rows that echo an answered message.

    A second reply to a message already answered is recorded by the clients as
    an "unmatched" error row (it resolves nothing); its cid (``<conn>-<seq>``)
    says which message it echoed. Such rows are few: they are read whole.
    """
    kind, status = pl.col("kind"), pl.col("status")
    echoes = (
        events.filter(kind == "error", status == "unmatched")
        .select(at=problem_time(), conn=pl.col("conn").cast(pl.Int32),
                seq=pl.col("cid").str.extract(r"-(\d+)$").cast(pl.Int64))
        .drop_nulls("seq").collect(engine="streaming")
    )  # fmt: skip
    if echoes.height == 0:
        return np.zeros(0, np.int64)
    keys = echoes.select("conn", "seq").unique()
    answered = (
        events.filter(kind == "recv").select(pl.col("conn").cast(pl.Int32),
                                             pl.col("seq").cast(pl.Int64))
        .join(keys.lazy(), on=["conn", "seq"], how="semi").unique()
        .collect(engine="streaming")
    )  # fmt: skip
    return echoes.join(answered, on=["conn", "seq"], how="semi")["at"].to_numpy()
