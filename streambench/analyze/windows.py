"""Per-window statistics of a prepared run: the table metrics, SLOs and rules read.

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

import polars as pl

from streambench.analyze.frame import Prepared
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


def latency_summary(sorted_latency: pl.Expr) -> list[pl.Expr]:
    """Quantile, max and mean expressions over ascending-sorted, null-free latencies."""
    return [
        *(nearest_rank_expr(sorted_latency, q, is_sorted=True).alias(name)
          for name, q in QUANTILES.items()),
        sorted_latency.max().alias("max_ms"),
        sorted_latency.mean().alias("mean_ms"),
    ]


def _kind_counts(frame: pl.DataFrame, w: pl.Expr, names: dict[str, str]) -> pl.DataFrame:
    """Rows per window and kind, one column per kind (``names``: kind -> column)."""
    counts = frame.group_by(w, "kind").agg(n=pl.len()).with_columns(pl.col("kind").cast(pl.String))
    return counts.pivot(on="kind", index="w", values="n", on_columns=list(names)).rename(names)


def _by_problem_time(prep: Prepared, w: pl.Expr) -> list[pl.DataFrame]:
    names = {"send": "sent", "recv": "replies", "error": "errors", "timeout": "timeouts"}
    sends = prep.rows("send").select(w, "lag_ms")
    lag = sends.group_by("w").agg(
        lag_p99_ms=nearest_rank_expr(pl.col("lag_ms"), 0.99), lag_max_ms=pl.col("lag_ms").max()
    )
    return [_kind_counts(prep.frame, w, names), lag]


def _last_scheduled(prep: Prepared) -> pl.DataFrame:
    """Per connection, the intended time of its last message (sent or not)."""
    rows = prep.rows("send", "error", "timeout").filter(pl.col("seq").is_not_null())
    return rows.group_by("conn").agg(last_due=pl.col("at").max())


def _by_observed_time(prep: Prepared, w: pl.Expr) -> list[pl.DataFrame]:
    k = pl.col("kind")
    churn = prep.rows("connect", "disconnect").sort("ts", maintain_order=True)
    churn = (
        churn.join(_last_scheduled(prep), on="conn", how="left")
        .with_columns(
            reconnect=(k == "connect") & ~pl.when(k == "connect").then("conn").is_first_distinct(),
            mid_run=(k == "disconnect") & (pl.col("ts") < pl.col("last_due")).fill_null(False),
        )
        .group_by(w)
        .agg(reconnects=pl.col("reconnect").sum(), disconnects=pl.col("mid_run").sum())
    )
    return [_kind_counts(prep.frame, w, {"recv": "received", "connect": "connects"}), churn]


def _unsent(prep: Prepared) -> pl.DataFrame:
    """Gaps in each connection's message numbers: ``at`` (of the next message), ``unsent``.

    One sort of an int64 key ``(conn << 40) | seq``: a step of more than one
    between neighbours of the same connection is a gap (a step across
    connections is at least 2**39 and ignored; repeated numbers step by 0).
    """
    rows = prep.rows("send", "error", "timeout").filter(pl.col("seq").is_not_null())
    keyed = rows.select(key=pl.col("conn").cast(pl.Int64) * (1 << 40) + pl.col("seq"), at="at")
    steps = keyed.sort("key").with_columns(unsent=pl.col("key").diff() - 1)
    return steps.filter(pl.col("unsent") > 0, pl.col("unsent") < 1 << 39).select("at", "unsent")


def _latency(prep: Prepared, w: pl.Expr) -> pl.DataFrame:
    replies = prep.rows("recv").filter(pl.col("latency_ms").is_not_null())
    replies = replies.select(w, pl.col("latency_ms")).sort("latency_ms")
    return replies.group_by("w").agg(latency_summary(pl.col("latency_ms")))


def _active(prep: Prepared, length: int) -> pl.Expr:
    """Windows at least 90% inside the sending period (rate rules skip the others)."""
    sends = prep.rows("send")["at"]
    if sends.len() == 0:
        return pl.lit(False)
    first, last = int(sends.min()), int(sends.max())  # type: ignore[arg-type]
    start = pl.col("w") * length + prep.origin(length)
    overlap = pl.min_horizontal(start + length, last) - pl.max_horizontal(start, first)
    return overlap >= 0.9 * length


def send_windows(prep: Prepared, *, window_s: float) -> pl.DataFrame:
    """The cheap subset of :func:`window_stats` for rules about the send rate:
    ``w``, ``start``, ``active``, ``sent``, ``throughput_sent``."""
    length = int(window_s * 1e9)
    origin = prep.origin(length)
    sends = prep.rows("send").group_by(((pl.col("at") - origin) // length).alias("w"))
    counts = sends.agg(sent=pl.len())
    last = int(counts["w"].max()) if counts.height else -1  # type: ignore[arg-type]
    table = pl.DataFrame({"w": pl.int_range(0, last + 1, eager=True)})
    return (
        table.join(counts, on="w", how="left")
        .with_columns(pl.col("sent").fill_null(0))
        .with_columns(
            active=_active(prep, length),
            start=pl.from_epoch(pl.col("w") * length + origin, time_unit="ns").dt.replace_time_zone(
                "UTC"
            ),
            throughput_sent=pl.col("sent") / window_s,
        )
        .sort("w")
    )


def window_stats(prep: Prepared, *, window_s: float) -> pl.DataFrame:
    """One row per window: counts, rates, throughput, latency quantiles, schedule lag."""
    length = int(window_s * 1e9)
    if length <= 0:
        raise ValueError("window must be > 0 seconds")
    origin = prep.origin(length)
    at = ((pl.col("at") - origin) // length).alias("w")
    seen = ((pl.col("ts") - origin) // length).alias("w")
    parts = [*_by_problem_time(prep, at), *_by_observed_time(prep, seen), _latency(prep, at)]
    for name, exceptions in (("lost", prep.lost), ("duplicates", prep.duplicates),
                             ("out_of_order", prep.reordered)):  # fmt: skip
        parts.append(exceptions.group_by(at).agg(pl.len().alias(name)))
    parts.append(_unsent(prep).group_by(at).agg(pl.col("unsent").sum().cast(pl.UInt32)))
    last = max((int(p["w"].max()) for p in parts if p.height), default=-1)  # type: ignore[arg-type]
    table = pl.DataFrame({"w": pl.int_range(0, last + 1, eager=True)})
    for part in parts:
        table = table.join(part, on="w", how="left")
    sent = pl.col("sent").clip(lower_bound=1)
    return (
        table.with_columns(pl.col(COUNT_COLUMNS).fill_null(0))
        .with_columns(
            active=_active(prep, length),
            start=pl.from_epoch(pl.col("w") * length + origin, time_unit="ns").dt.replace_time_zone(
                "UTC"
            ),
            throughput_sent=pl.col("sent") / window_s,
            throughput_recv=pl.col("received") / window_s,
            error_rate=pl.col("errors") / sent,
            timeout_rate=pl.col("timeouts") / sent,
            loss_rate=pl.col("lost") / sent,
            churn=pl.col("reconnects") + pl.col("disconnects"),
        )
        .sort("w")
    )


def shape_windows(prep: Prepared, *, window_s: float) -> pl.DataFrame:
    """Replies per (window, schema fingerprint): ``w``, ``shape``, ``count``."""
    length = int(window_s * 1e9)
    w = ((pl.col("at") - prep.origin(length)) // length).alias("w")
    odd = prep.odd_shapes.group_by(w, "shape").agg(count=pl.len())
    plain = prep.frame.filter("plain_shape").group_by(w).agg(count=pl.len())
    plain = plain.select("w", shape=pl.lit(prep.plain_shape, pl.String), count="count")
    return pl.concat([plain, odd.select("w", "shape", "count")]).sort("w", "shape")
