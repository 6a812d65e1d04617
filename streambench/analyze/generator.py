"""Whose latency is it? The load generator's schedule lag, window by window.

Every send row holds when its message was due (``intended_ns``) and when the
generator actually sent it (``sent_ns``, the row's ``ts``); the difference is
the generator's **schedule lag**. Latency is measured from the due time, so
when the generator falls behind (its process starved of CPU, its event loop
blocked by other work in the same process) the latency it reports is partly
its own.

A window is **client-bound** when the generator's stall there, the larger of

* the schedule lag p99 of the window's sends, and
* the longest event-loop stall the process health rows recorded in it (when
  the run has them, see docs/analysis.md#process-health-rows),

is at least ``limit_ms`` *and* at least ``share`` of the window's latency p99
(or the window got no reply at all): the lag then explains most of the
latency, and what was measured there is the client, not the target. A loop
stall counts only when it covers at least :data:`COVER` of the window: a
shorter one holds up fewer than 1% of the window's replies and so cannot make
its p99 (a 6 ms stall in a 1 s window, which the hypervisor of a shared
virtual machine causes now and then, is not the run being client-bound). With
health rows, a generator process that used (nearly) a whole core in the
window is reported as evidence (``client_cpu``) too.

The run summary warns about client-bound windows in one line, and the
``schedule_lag`` rule (``generator-stall``) takes over the latency anomalies
they explain (:mod:`streambench.analyze.attribute`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

LIMIT_MS = 5.0
"""Schedule lag (p99 in a window) at or above which the generator counts as behind."""
SHARE = 0.5
"""...and the share of the window's latency p99 the lag must reach to explain it."""
COVER = 0.01
"""...and the share of the window an event-loop stall must cover to count at all."""
MAX_SPANS = 3  # spans named in the one-line warning


def client_bound(*, window_ms: float, limit_ms: float = LIMIT_MS, share: float = SHARE
                 ) -> pl.Expr:
    """Expression over a per-window table with ``lag_p99_ms``, ``p99_ms`` and
    ``loop_stall_ms`` (may be null): is the window (``window_ms`` long) client-bound?"""
    loop = pl.when(pl.col("loop_stall_ms") >= COVER * window_ms).then("loop_stall_ms")
    stall = pl.max_horizontal("lag_p99_ms", loop)
    explains = pl.col("p99_ms").is_null() | (stall >= share * pl.col("p99_ms"))
    return ((stall >= limit_ms) & explains).fill_null(False)


def health_windows(health: pl.DataFrame | None, *, length_ns: int, origin: int) -> pl.DataFrame:
    """The load generator's health rows per window: ``w``, ``loop_stall_ms`` (the
    longest stall of any client process), ``client_cpu`` (the busiest client
    process's CPU, in cores). Empty without health rows."""
    schema = {"w": pl.Int64, "loop_stall_ms": pl.Float64, "client_cpu": pl.Float64}
    if health is None or health.height == 0:
        return pl.DataFrame(schema=schema)
    rows = health.filter(pl.col("source") == "client")
    w = (pl.col("ts").dt.epoch("ns") - origin) // length_ns
    cpu = pl.col("cpu_s") / pl.col("interval_s").clip(lower_bound=1e-9)
    return (
        rows.group_by(w.alias("w"))
        .agg(loop_stall_ms=pl.col("loop_stall_ms").max(), client_cpu=cpu.max())
        .cast(schema)  # type: ignore[arg-type]
    )


def generator_windows(
    windows: pl.DataFrame,
    health: pl.DataFrame | None = None,
    *,
    length_ns: int,
    origin: int,
    limit_ms: float = LIMIT_MS,
    share: float = SHARE,
) -> pl.DataFrame:
    """Per window: ``w``, ``start``, ``sent``, ``lag_p99_ms``, ``lag_max_ms``,
    ``p99_ms`` (latency), ``loop_stall_ms``, ``client_cpu`` and ``client_bound``.

    ``windows`` is a per-window table with at least those first columns (a
    :class:`~streambench.analyze.measure.Metrics` window table);
    ``health`` the run's process health rows, if any.
    """
    table = windows.select("w", "start", "sent", "lag_p99_ms", "lag_max_ms", "p99_ms")
    table = table.join(health_windows(health, length_ns=length_ns, origin=origin),
                       on="w", how="left")  # fmt: skip
    return table.with_columns(client_bound=client_bound(window_ms=length_ns / 1e6,
                                                        limit_ms=limit_ms, share=share))


def spans(table: pl.DataFrame, *, length_ns: int, origin: int) -> list[tuple[int, int]]:
    """Client-bound windows of ``table`` as merged ``(start, end)`` epoch-ns spans."""
    found: list[tuple[int, int]] = []
    for w in table.filter("client_bound")["w"].sort().to_list():
        start = origin + w * length_ns
        if found and found[-1][1] == start:
            found[-1] = (found[-1][0], start + length_ns)
        else:
            found.append((start, start + length_ns))
    return found


def behind(table: pl.DataFrame, *, length_ns: int, origin: int) -> dict[str, Any]:
    """What the run summary says about the generator (see :func:`warning`)."""
    bound = table.filter("client_bound")
    stretches = spans(table, length_ns=length_ns, origin=origin)
    return {
        "behind": bound.height > 0,
        "client_bound_windows": bound.height,
        "windows": table.filter(pl.col("sent") > 0).height,
        "window_s": length_ns / 1e9,
        "lag_p99_ms": _round(bound["lag_p99_ms"].max()) if bound.height else None,
        "lag_max_ms": _round(bound["lag_max_ms"].max()) if bound.height else None,
        "spans": [[_iso(s), _iso(e)] for s, e in stretches],
    }


def warning(info: dict[str, Any]) -> str | None:
    """The one-line warning for a summary's ``generator`` entry (None when it kept up)."""
    if not info.get("behind"):
        return None
    shown = ", ".join(f"{_clock(s)}-{_clock(e)}" for s, e in info["spans"][:MAX_SPANS])
    more = len(info["spans"]) - MAX_SPANS
    where = shown + (f" and {more} more" if more > 0 else "")
    # a run that sends nothing (SSE) is client-bound by its event-loop stalls alone
    lag = ("event-loop stalls, no sends to measure schedule lag" if info["lag_p99_ms"] is None
           else f"schedule lag p99 up to {info['lag_p99_ms']:.1f} ms, "
           f"max {info['lag_max_ms']:.1f} ms")
    return (f"the load generator fell behind its schedule in {info['client_bound_windows']} of "
            f"{info['windows']} windows ({where} UTC): {lag}; results in those "
            "windows are client-bound (use --workers or fewer connections per process)")


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%H:%M:%S")
