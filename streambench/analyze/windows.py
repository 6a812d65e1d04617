"""Per-window statistics: the table metrics, SLOs and rules read, built slice by slice.

Windows are aligned to the clock (window ``w`` covers ``[origin + w*len,
origin + (w+1)*len)`` where ``origin`` is the last multiple of the length since
the epoch before the run's first event), and every window from the first to
the last appears, empty ones with zero counts.

Two clocks, on purpose:

* ``sent``, latency quantiles, ``errors``, ``timeouts``, ``lost``,
  ``duplicates``, ``out_of_order`` and schedule lag are counted at the
  *problem time* (the message's intended send time);
* ``received``, ``connects``, ``reconnects`` and ``disconnects`` at the time
  they were observed (``ts``): throughput is what the client actually saw.

``disconnects`` counts only closes of a connection that still had messages
scheduled after them (a connection closing once its own schedule is done is
tear-down, not churn, even while other connections are still sending).
``unsent`` counts message numbers missing from a connection's sequence: no
send, error or timeout row was ever recorded for them (the client skipped
them), placed at the intended time of the next message it did record.
``active`` marks windows at least 90% inside the sending period: rules about
rates ignore the partial windows at both ends.
Latency and schedule-lag quantiles are exact nearest-rank values
(:mod:`streambench.stats`): the smallest observed value with at least q of
the window's values at or below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from streambench.analyze.facts import RunFacts
from streambench.analyze.frame import Slice
from streambench.analyze.matching import Exceptions, unsent_between
from streambench.stats import nearest_rank_expr

QUANTILES: dict[str, float] = {
    "p50_ms": 0.50,
    "p90_ms": 0.90,
    "p95_ms": 0.95,
    "p99_ms": 0.99,
    "p999_ms": 0.999,
}
COUNT_COLUMNS = (
    "sent", "received", "replies", "errors", "timeouts", "lost", "duplicates",
    "out_of_order", "unsent", "connects", "reconnects", "disconnects",
)  # fmt: skip

WINDOW_METRICS: tuple[str, ...] = (
    *COUNT_COLUMNS, *QUANTILES, "max_ms", "mean_ms", "lag_p99_ms", "lag_max_ms",
    "throughput_sent", "throughput_recv", "error_rate", "timeout_rate", "loss_rate", "churn",
)  # fmt: skip
"""Columns of the per-window table a rule may name as its ``metric``."""
LATENCY_SUM = "latency_sum_ms"  # kept beside the table: the run's mean is summed from it


@dataclass(frozen=True)
class Grid:
    """Windows of ``length`` ns from ``origin``; a slice covers windows ``[first, stop)``."""

    length: int
    origin: int

    def of(self, column: str) -> pl.Expr:
        return ((pl.col(column) - self.origin) // self.length).alias("w")

    def index(self, times: np.ndarray) -> np.ndarray:
        return (times - self.origin) // self.length


def _by_problem_time(sl: Slice, grid: Grid) -> pl.DataFrame:
    k = pl.col("kind")
    due = sl.frame.lazy().filter("due")  # lazy: only the columns used are touched
    counts = due.group_by(grid.of("at")).agg(
        sent=(k == "send").sum(), replies=(k == "recv").sum(),
        errors=(k == "error").sum(), timeouts=(k == "timeout").sum(),
    ).collect()  # fmt: skip
    lag = sl.rows("send").group_by(grid.of("at")).agg(
        lag_p99_ms=nearest_rank_expr(pl.col("lag_ms"), 0.99), lag_max_ms=pl.col("lag_ms").max())
    return counts.join(lag, on="w", how="left")


def _latency(sl: Slice, grid: Grid) -> pl.DataFrame:
    replies = sl.rows("recv").filter(pl.col("latency_ms").is_not_null())
    table = replies.group_by(grid.of("at")).agg(
        *(nearest_rank_expr(pl.col("latency_ms"), q).alias(name) for name, q in QUANTILES.items()),
        max_ms=pl.col("latency_ms").max(), n=pl.len(),
    )  # fmt: skip
    # Sums in row order (numpy, sequential): the same bits however the run is sliced.
    w = grid.index(replies["at"].to_numpy())
    if len(w) == 0:
        return table.with_columns(mean_ms=pl.lit(None, pl.Float64), **{LATENCY_SUM: 0.0}).drop("n")
    first = int(w.min())
    sums = np.bincount(w - first, weights=replies["latency_ms"].to_numpy())
    total = pl.DataFrame({"w": np.arange(first, first + len(sums)), LATENCY_SUM: sums})
    return (table.join(total, on="w", how="left")
            .with_columns(mean_ms=pl.col(LATENCY_SUM) / pl.col("n")).drop("n"))  # fmt: skip


def _by_observed_time(sl: Slice, grid: Grid) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Counts by observed time; each connection's first connect in the slice
    (``conn``, ``ts``: a reconnect if it had connected in an earlier slice); and
    the slice's disconnects (``conn``, ``ts``: churn if the connection still had
    messages scheduled after them, settled when every slice is in)."""
    k = pl.col("kind")
    seen = sl.frame.lazy().filter("seen")  # lazy: only the columns used are touched
    counts = seen.group_by(grid.of("ts")).agg(received=(k == "recv").sum(),
                                              connects=(k == "connect").sum()).collect()
    churn = seen.filter(k.is_in(["connect", "disconnect"])).select("kind", "ts", "conn").collect()
    churn = churn.sort("ts", maintain_order=True)
    connect = pl.col("kind") == "connect"
    first = pl.when(connect).then("conn").is_first_distinct()
    reconnects = churn.filter(connect & ~first).group_by(grid.of("ts")).agg(
        reconnects=pl.len())
    firsts = churn.filter(connect & first).select("conn", "ts")
    closes = churn.filter(k == "disconnect").select("conn", "ts")
    return counts.join(reconnects, on="w", how="full", coalesce=True), firsts, closes


def _exceptions(exc: Exceptions, grid: Grid) -> list[pl.DataFrame]:
    parts = []
    for name, times in (("lost", exc.lost), ("duplicates", exc.duplicates),
                        ("out_of_order", exc.reordered)):  # fmt: skip
        frame = pl.DataFrame({"w": grid.index(times)}, schema={"w": pl.Int64})
        parts.append(frame.group_by("w").agg(pl.len().alias(name)))
    unsent = exc.unsent.group_by(grid.of("at")).agg(pl.col("unsent").sum())
    return [*parts, unsent]


@dataclass(frozen=True)
class SliceWindows:
    """The rows of the per-window table for one slice's windows, and what the
    merge needs to settle across slices (see :func:`finish_windows`)."""

    table: pl.DataFrame
    first_connects: pl.DataFrame  # conn, ts: each connection's first connect in the slice
    disconnects: pl.DataFrame  # conn, ts
    last_due: pl.DataFrame  # conn, last_due: the last message scheduled in the slice
    edges: pl.DataFrame  # conn, low, low_at, high (see matching.Exceptions)


def slice_windows(sl: Slice, exc: Exceptions, *, grid: Grid, facts: RunFacts) -> SliceWindows:
    """The rows of the per-window table for the windows of one slice (counts not
    yet filled, derived columns not yet computed: see :func:`finish_windows`)."""
    first, stop = grid.index(np.array([sl.start, sl.end]))
    table = pl.DataFrame({"w": pl.int_range(first, stop, eager=True)})
    observed, connects, closes = _by_observed_time(sl, grid)
    parts = [_by_problem_time(sl, grid), observed, _latency(sl, grid), *_exceptions(exc, grid)]
    for part in parts:
        table = table.join(part.with_columns(pl.col("w").cast(pl.Int64)), on="w", how="left")
    scheduled = sl.rows("send", "error", "timeout").filter(pl.col("seq").is_not_null())
    last_due = scheduled.group_by("conn").agg(last_due=pl.col("at").max())
    return SliceWindows(table, connects, closes, last_due, exc.edges)


def _across_slices(parts: list[SliceWindows], grid: Grid) -> list[pl.DataFrame]:
    """Reconnects and skipped numbers that only show between slices, per window."""
    seen: set[int] = set()
    again = []
    for part in parts:
        again.append(part.first_connects.filter(pl.col("conn").is_in(list(seen))))
        seen.update(part.first_connects["conn"].to_list())
    reconnects = pl.concat(again).group_by(grid.of("ts")).agg(extra_reconnects=pl.len())
    unsent = unsent_between([p.edges for p in parts]).group_by(grid.of("at")).agg(
        extra_unsent=pl.col("unsent").sum())
    last_due = pl.concat([p.last_due for p in parts]).group_by("conn").agg(
        pl.col("last_due").max())
    mid_run = pl.concat([p.disconnects for p in parts]).join(last_due, on="conn", how="left")
    disconnects = mid_run.filter(pl.col("ts") < pl.col("last_due")).group_by(
        grid.of("ts")).agg(disconnects=pl.len())
    return [reconnects, unsent, disconnects]


def finish_windows(parts: list[SliceWindows], *, grid: Grid, facts: RunFacts,
                   window_s: float) -> pl.DataFrame:  # fmt: skip
    """The whole per-window table from the slices' rows, in time order (see the
    module docstring)."""
    table = pl.concat([p.table for p in parts], how="diagonal_relaxed") if parts else (
        pl.DataFrame(schema={"w": pl.Int64}))
    if parts:
        for extra in _across_slices(parts, grid):
            table = table.join(extra.with_columns(pl.col("w").cast(pl.Int64)), on="w", how="left")
        table = table.with_columns(
            reconnects=pl.col("reconnects").fill_null(0) + pl.col("extra_reconnects").fill_null(0),
            unsent=pl.col("unsent").fill_null(0) + pl.col("extra_unsent").fill_null(0),
        ).drop("extra_reconnects", "extra_unsent")
    for name in (*COUNT_COLUMNS, *QUANTILES, "max_ms", "mean_ms", "lag_p99_ms", "lag_max_ms",
                 LATENCY_SUM):
        if name not in table.columns:
            dtype = pl.UInt32 if name in COUNT_COLUMNS else pl.Float64
            table = table.with_columns(pl.lit(None, dtype).alias(name))
    sent = pl.col("sent").clip(lower_bound=1)
    return (
        table.with_columns(pl.col(COUNT_COLUMNS).fill_null(0).cast(pl.UInt32))
        .with_columns(
            active=_active(facts, grid),
            start=pl.from_epoch(pl.col("w") * grid.length + grid.origin, time_unit="ns")
            .dt.replace_time_zone("UTC"),
            throughput_sent=pl.col("sent") / window_s,
            throughput_recv=pl.col("received") / window_s,
            error_rate=pl.col("errors") / sent,
            timeout_rate=pl.col("timeouts") / sent,
            loss_rate=pl.col("lost") / sent,
            churn=pl.col("reconnects") + pl.col("disconnects"),
        )
        .select(_ORDER)
        .sort("w")
    )  # fmt: skip


_ORDER = ["w", "sent", "replies", "errors", "timeouts", "lag_p99_ms", "lag_max_ms", "received",
          "connects", "reconnects", "disconnects", *QUANTILES, "max_ms", "mean_ms", "lost",
          "duplicates", "out_of_order", "unsent", "active", "start", "throughput_sent",
          "throughput_recv", "error_rate", "timeout_rate", "loss_rate", "churn",
          LATENCY_SUM]  # fmt: skip


def _active(facts: RunFacts, grid: Grid) -> pl.Expr:
    """Windows at least 90% inside the sending period (rate rules skip the others)."""
    if facts.first_send is None or facts.last_send is None:
        return pl.lit(False)
    start = pl.col("w") * grid.length + grid.origin
    overlap = (pl.min_horizontal(start + grid.length, facts.last_send)
               - pl.max_horizontal(start, facts.first_send))  # fmt: skip
    return overlap >= 0.9 * grid.length


def send_windows(events: pl.LazyFrame, facts: RunFacts, *, window_s: float) -> pl.DataFrame:
    """The cheap subset of the window table for rules about the send rate: ``w``,
    ``start``, ``active``, ``sent``, ``throughput_sent`` (one streaming pass)."""
    from streambench.analyze.facts import problem_time

    grid = Grid(int(window_s * 1e9), facts.origin(int(window_s * 1e9)))
    counts = (events.filter(pl.col("kind") == "send")
              .group_by(((problem_time() - grid.origin) // grid.length).alias("w"))
              .agg(sent=pl.len()).collect(engine="streaming"))  # fmt: skip
    last = int(counts["w"].max()) if counts.height else -1  # type: ignore[arg-type]
    table = pl.DataFrame({"w": pl.int_range(0, last + 1, eager=True)})
    return (
        table.join(counts.with_columns(pl.col("w").cast(pl.Int64)), on="w", how="left")
        .with_columns(pl.col("sent").fill_null(0).cast(pl.UInt32))
        .with_columns(
            active=_active(facts, grid),
            start=pl.from_epoch(pl.col("w") * grid.length + grid.origin, time_unit="ns")
            .dt.replace_time_zone("UTC"),
            throughput_sent=pl.col("sent") / window_s,
        )
        .sort("w")
    )  # fmt: skip


def shape_windows(sl: Slice, grid: Grid, plain_shape: str | None) -> pl.DataFrame:
    """Replies per (window, schema fingerprint) of one slice: ``w``, ``shape``, ``count``."""
    odd = sl.odd_shapes.group_by(grid.of("at"), "shape").agg(count=pl.len())
    plain = sl.plain_shapes.group_by(grid.of("at")).agg(count=pl.len())
    plain = plain.select("w", shape=pl.lit(plain_shape, pl.String), count="count")
    return pl.concat([plain, odd.select("w", "shape", "count")]).with_columns(
        pl.col("w").cast(pl.Int64), pl.col("count").cast(pl.UInt32))
