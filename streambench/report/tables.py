"""Small tables the charts draw, computed from a run's events with polars.

Each function reads only the columns it needs from the store's LazyFrame and
returns a compact DataFrame (at most a few hundred rows), so charts and
reports stay small whatever the size of the run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import polars as pl

from streambench.analyze.quantiles import distribution

MAX_NINES = 4.0  # the percentile curve stops at 99.99%
_STEPS_PER_NINE = 40


def _latencies(events: pl.LazyFrame) -> pl.LazyFrame:
    return events.filter(pl.col("kind") == "recv").select("latency_ms")


def percentiles(runs: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Latency at percentiles from 0 to 99.99 for each run (label -> events).

    Columns: ``run``, ``percentile`` (0-100), ``nines`` (-log10(1 - q), the
    x axis of :func:`streambench.report.charts.percentile_curve`),
    ``latency_ms`` (exact nearest-rank value). A run's curve stops where its
    sample size stops supporting the percentile (n replies: log10(n) nines).
    Reads the store in two streaming passes per run, in bounded memory.
    """
    frames = []
    for label, events in runs.items():
        values = distribution([_latencies(events)])
        if values.count == 0:
            continue
        top = min(MAX_NINES, math.log10(values.count))
        steps = max(int(top * _STEPS_PER_NINE), 1)
        nines = [top * i / steps for i in range(steps + 1)]
        qs = [round(1 - 10 ** (-n), 6) for n in nines]
        frames.append(pl.DataFrame({
            "run": [label] * len(qs),
            "percentile": [q * 100 for q in qs],
            "nines": nines,
            "latency_ms": values.quantiles(qs),
        }))  # fmt: skip
    return pl.concat(frames) if frames else pl.DataFrame(
        schema={"run": pl.String, "percentile": pl.Float64, "nines": pl.Float64,
                "latency_ms": pl.Float64})  # fmt: skip


def histogram(runs: Mapping[str, pl.LazyFrame], *, bins_per_decade: int = 10) -> pl.DataFrame:
    """Share of replies per logarithmic latency bin, for each run (label -> events).

    Columns: ``run``, ``bin_ms`` (lower edge of the bin), ``share`` (0-1).
    One streaming pass per run.
    """
    frames = []
    for label, events in runs.items():
        latency = pl.col("latency_ms").clip(lower_bound=1e-3)
        edge = (latency.log10() * bins_per_decade).floor() / bins_per_decade
        counts = (_latencies(events).drop_nulls().group_by(bin_ms=10**edge).agg(n=pl.len())
                  .collect(engine="streaming"))  # fmt: skip
        if counts.height == 0:
            continue
        frames.append(counts.select(run=pl.lit(label), bin_ms="bin_ms",
                                    share=pl.col("n") / pl.col("n").sum()).sort("bin_ms"))
    return pl.concat(frames) if frames else pl.DataFrame(
        schema={"run": pl.String, "bin_ms": pl.Float64, "share": pl.Float64})  # fmt: skip


def soak_health(health: pl.DataFrame | pl.LazyFrame, *, window_s: float = 60.0) -> pl.DataFrame:
    """Process health rows (``Store.health(run_id)``) per window and process, for
    :func:`streambench.report.charts.soak_health`: ``start``, ``process``
    (``target`` or ``client <worker>``), ``rss_mb``, ``open_files``, ``cpu``,
    ``parts_written``, ``loop_stall_ms``, ``connections``."""
    from streambench.analyze.soak import health_windows

    frame = health.collect() if isinstance(health, pl.LazyFrame) else health
    if frame.height == 0:
        return pl.DataFrame(schema={"start": pl.Datetime("ns", "UTC"), "process": pl.String,
                                    "rss_mb": pl.Float64})  # fmt: skip
    first = int(frame["ts"].dt.epoch("ns").min())  # type: ignore[arg-type]
    length = int(window_s * 1e9)
    table = health_windows(frame, window_s=window_s, origin=first - first % length)
    return table.with_columns(process=_process()).drop("w", "source", "worker")


def soak_summary(health: pl.DataFrame | pl.LazyFrame, *, warmup_s: float = 60.0
                 ) -> pl.DataFrame:  # fmt: skip
    """One row per process: ``process``, ``samples``, memory at the start and end of
    the judged span (after ``warmup_s``, fitted) and its ``growth_pct``,
    ``mb_per_hour``, ``r2`` (steadiness), peak ``open_files`` and ``parts_written``."""
    from streambench.analyze.soak import memory_trends

    frame = health.collect() if isinstance(health, pl.LazyFrame) else health
    trends = memory_trends(frame, warmup_s=warmup_s)
    if frame.height == 0 or trends.height == 0:
        return pl.DataFrame(schema={"process": pl.String, "samples": pl.Int64})
    peaks = frame.group_by("source", "worker").agg(
        open_files=pl.col("open_files").max(), parts_written=pl.col("parts_written").max())
    return (
        trends.join(peaks, on=["source", "worker"], how="left", nulls_equal=True)
        .with_columns(process=_process(), growth_pct=pl.col("growth") * 100)
        .select("process", "samples", "start_mb", "end_mb", "growth_pct", "mb_per_hour", "r2",
                "open_files", "parts_written")
        .sort("process")
    )  # fmt: skip


def _process() -> pl.Expr:
    return (pl.when(pl.col("source") == "client")
            .then(pl.format("client {}", pl.col("worker").fill_null(0)))
            .otherwise(pl.col("source")))  # fmt: skip


def error_kinds(events: pl.LazyFrame) -> pl.DataFrame:
    """Failed messages and failed sends by kind: ``kind``, ``count`` (largest first).

    ``kind`` is the error's status (``error_reply``, ``disconnected``,
    ``not_connected`` ...) or ``timeout``.
    """
    kind = pl.col("kind")
    return (
        events.filter(kind.is_in(["error", "timeout"]))
        .select(kind=pl.when(kind == "timeout").then(pl.lit("timeout"))
                .otherwise(pl.coalesce(pl.col("status"), pl.lit("error"))))
        .group_by("kind").agg(count=pl.len())
        .sort(["count", "kind"], descending=[True, False])
        .collect(engine="streaming")
    )  # fmt: skip


def push_streams(events: pl.LazyFrame, *, limit: int = 200) -> pl.DataFrame:
    """One row per stream of server pushes (a connection's, or a subscription's ``cid``):
    ``pushes``, gap and staleness percentiles (ms; staleness null without server
    timestamps) and sequence gaps (``missing``, ``duplicates``, ``out_of_order``; null
    without sequence numbers). See :mod:`streambench.analyze.pushes`. Empty without pushes.
    """
    from streambench.analyze.pushes import gap_ms, numbered_pushes, staleness_ms
    from streambench.stats import nearest_rank_expr

    gap, stale = pl.col("gap"), pl.col("stale")
    figures = (events.filter(pl.col("kind") == "push")
               .select("conn", "cid", gap=gap_ms(), stale=staleness_ms())
               .group_by("conn", "cid").agg(
                   pushes=pl.len(), gap_p50_ms=nearest_rank_expr(gap, 0.5),
                   gap_p99_ms=nearest_rank_expr(gap, 0.99), gap_max_ms=gap.max(),
                   staleness_p50_ms=nearest_rank_expr(stale, 0.5),
                   staleness_p99_ms=nearest_rank_expr(stale, 0.99)))
    seq = pl.col("seq")
    sequence = (numbered_pushes(events).group_by("conn", "epoch", "cid").agg(
        missing=seq.max() - seq.min() + 1 - seq.n_unique(),
        duplicates=pl.col("duplicate").sum(), out_of_order=pl.col("out_of_order").sum())
        .group_by("conn", "cid").agg(pl.col("missing", "duplicates", "out_of_order").sum()))
    return (figures.join(sequence, on=["conn", "cid"], how="left", nulls_equal=True)
            .sort("conn", "cid", nulls_last=False).head(limit).collect())


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return "" if value is None else str(value)


def anomaly_table(anomalies: Iterable[Any]) -> pl.DataFrame:
    """Anomalies (``Anomaly`` objects or their ``to_dict()``) as one row each.

    Columns: ``start``, ``seconds``, ``severity``, ``rule``, ``blames`` (its
    ``cause``: target, or generator when the load generator's own lag explains
    it, with the explanation), ``fingerprint``, ``injected`` (ground-truth fault
    kinds overlapping it), ``evidence`` and ``suggested_fixes`` (best first,
    with confidence).
    """
    rows = []
    for anomaly in anomalies:
        doc = anomaly if isinstance(anomaly, Mapping) else anomaly.to_dict()
        start, end = _time(doc["start"]), _time(doc["end"])
        rows.append({
            "start": start,
            "seconds": (end - start).total_seconds(),
            "severity": doc["severity"],
            "rule": doc["rule"],
            "blames": _blames(doc),
            "fingerprint": doc["fingerprint"],
            "injected": ", ".join(doc.get("injected") or []),
            "evidence": ", ".join(f"{k}={_show(v)}" for k, v in
                                  (doc.get("evidence") or {}).items()),
            "suggested_fixes": "; ".join(
                f"{s.get('title') or s['fix']} ({s['confidence']:.0%})"
                for s in doc.get("suggestions") or []),
        })  # fmt: skip
    return pl.DataFrame(rows, schema=_ANOMALY_SCHEMA)


def _blames(doc: Mapping[str, Any]) -> str:
    cause = doc.get("cause") or "target"
    return f"{cause}: {doc['explanation']}" if doc.get("explanation") else cause


_ANOMALY_SCHEMA = {"start": pl.Datetime("us", "UTC"), "seconds": pl.Float64(),
                   "severity": pl.String(), "rule": pl.String(), "blames": pl.String(),
                   "fingerprint": pl.String(), "injected": pl.String(), "evidence": pl.String(),
                   "suggested_fixes": pl.String()}  # fmt: skip


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1e9, tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def slo_table(report: Any) -> pl.DataFrame:
    """An SLO report (``check_slo``) as one row per objective.

    Columns: ``objective``, ``target``, ``measured``, ``verdict`` (pass | fail
    | no-data), ``detail``.
    """
    doc = report if isinstance(report, Mapping) else report.to_dict()
    rows = [{"objective": o["name"], "target": o["target"], "measured": o["measured"],
             "verdict": o["verdict"], "detail": o.get("detail", "")}
            for o in doc["objectives"]]  # fmt: skip
    return pl.DataFrame(rows, schema={"objective": pl.String, "target": pl.String,
                                      "measured": pl.Float64, "verdict": pl.String,
                                      "detail": pl.String})  # fmt: skip


_VERDICT_COLORS = {"pass": "#e6f4ea", "fail": "#fce8e6", "no-data": "#f1f3f4",
                   "improved": "#e6f4ea", "regressed": "#fce8e6", "unchanged": "#f1f3f4",
                   "new": "#fef7e0", "recurring": "#fce8e6", "gone": "#e6f4ea",
                   "critical": "#fce8e6", "error": "#fce8e6", "warning": "#fef7e0"}  # fmt: skip


def to_html(frame: pl.DataFrame, *, max_rows: int = 200) -> str:
    """A plain HTML table of ``frame`` for reports: no quotes, no dtype row, verdict
    and severity cells tinted (pass green, fail red ...), numbers right-aligned.

    Styles are inline, so the table looks the same in JupyterLab and in HTML.
    """
    cell = "padding:3px 10px;border-bottom:1px solid #ddd;vertical-align:top;"
    head = "".join(f"<th style='{cell}text-align:left'>{html.escape(name)}</th>"
                   for name in frame.columns)  # fmt: skip
    rows = []
    for row in frame.head(max_rows).iter_rows():
        cells = []
        for value in row:
            text = _show(value)
            tint = _VERDICT_COLORS.get(text)
            align = "right" if isinstance(value, int | float) else "left"
            background = f"background:{tint};" if tint else ""
            cells.append(f"<td style='{cell}{background}text-align:{align}'>"
                         f"{html.escape(text)}</td>")  # fmt: skip
        rows.append(f"<tr>{''.join(cells)}</tr>")
    more = (f"<p><i>{frame.height - max_rows} more rows not shown</i></p>"
            if frame.height > max_rows else "")  # fmt: skip
    return (f"<table class='streambench' style='border-collapse:collapse;font-size:0.9em'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}")


def show(frame: pl.DataFrame, *, max_rows: int = 200) -> Any:
    """``frame`` as an IPython HTML object (see :func:`to_html`), for notebooks."""
    from IPython.core.display import HTML

    return HTML(to_html(frame, max_rows=max_rows))


def fanout_groups(fanout: Mapping[str, Any]) -> pl.DataFrame:
    """The summary's fan-out block per group (``summary["fanout"]``), least delivered
    first: messages, deliveries expected and received, the ratio, latency p50/p99 from
    the sender's intended send and the time until the last member got a message (p99)."""
    rows = sorted(fanout.get("groups", []), key=lambda g: (g["delivery_ratio"] or 0.0,
                                                           g["group"] or ""))
    return pl.DataFrame(rows, schema={
        "group": pl.String, "messages": pl.Int64, "expected": pl.Int64, "delivered": pl.Int64,
        "delivery_ratio": pl.Float64, "p50_ms": pl.Float64, "p99_ms": pl.Float64,
        "last_member_p99_ms": pl.Float64})


def comparison_table(comparison: Any) -> pl.DataFrame:
    """A comparison (``compare_runs``) as one row per metric.

    Columns: ``metric``, ``baseline``, ``candidate``, ``change``, ``change_pct``,
    ``ci_low``/``ci_high`` (confidence interval of the change, same unit),
    ``relative``/``relative_low``/``relative_high`` (the same over ``|baseline|``,
    for :func:`streambench.report.charts.deltas`), ``verdict``, ``better``.
    """
    doc = comparison if isinstance(comparison, Mapping) else comparison.to_dict()
    rows = []
    for c in doc["changes"]:
        low, high = c["ci"]
        base = abs(c["baseline"]) if c["baseline"] else None
        rows.append({
            "metric": c["metric"], "baseline": c["baseline"], "candidate": c["candidate"],
            "change": c["change"], "change_pct": c["change_pct"], "ci_low": low, "ci_high": high,
            "relative": c["change"] / base if base and c["change"] is not None else None,
            "relative_low": low / base if base and low is not None else None,
            "relative_high": high / base if base and high is not None else None,
            "verdict": c["verdict"], "better": c["better"],
        })  # fmt: skip
    floats = ("baseline", "candidate", "change", "change_pct", "ci_low", "ci_high", "relative",
              "relative_low", "relative_high")  # fmt: skip
    schema = {"metric": pl.String, **dict.fromkeys(floats, pl.Float64), "verdict": pl.String,
              "better": pl.String}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)
