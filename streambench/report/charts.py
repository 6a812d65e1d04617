"""Altair charts of runs, drawn offline.

Every function takes small, already aggregated polars frames (per-window
metrics, percentile tables, per-run histories; see :mod:`streambench.report.tables`)
and returns an altair chart; none reads the store. Charts carry only the
aggregated rows, never raw events, so a report stays small whatever the run's size.

Offline: :func:`offline` makes altair render charts as inline SVG (through
vl-convert, no browser and no network), which is what JupyterLab shows and what
the HTML reports embed. :func:`to_svg` gives the SVG text of one chart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import altair as alt
import polars as pl

WIDTH = 640
HEIGHT = 220
LATENCY_QUANTILES = ("p50_ms", "p95_ms", "p99_ms")
_UTC = alt.TimeUnit("utcyearmonthdatehoursminutesseconds")


def offline() -> None:
    """Render altair charts as inline SVG from now on (no JavaScript, no CDN)."""
    alt.renderers.enable("svg")


def to_svg(chart: alt.TopLevelMixin) -> str:
    """The chart as SVG text, rendered locally by vl-convert."""
    import vl_convert

    return str(vl_convert.vegalite_to_svg(chart.to_dict()))


def _frame(data: pl.DataFrame) -> pl.DataFrame:
    """Datetimes as naive UTC (vega reads them as UTC via the ``utc`` scale)."""
    return data.with_columns(
        pl.col(name).dt.replace_time_zone(None)
        for name, dtype in data.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


def _time_axis(field: str = "start", title: str = "time (UTC)") -> alt.X:
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format="%H:%M:%S"))  # fmt: skip


def latency_over_time(
    windows: pl.DataFrame,
    *,
    quantiles: Iterable[str] = LATENCY_QUANTILES,
    anomalies: Iterable[Mapping[str, Any]] = (),
    title: str = "Latency per window (from intended send)",
) -> alt.LayerChart:
    """Latency quantiles per window, with anomalies shaded.

    ``windows``: ``start`` (datetime) and the quantile columns (``p50_ms`` ...).
    ``anomalies``: dicts with ``start``/``end`` (ISO strings or datetimes) and
    ``rule`` (an anomaly's ``to_dict()``), drawn as shaded spans.
    """
    names = [q for q in quantiles if q in windows.columns]
    long = _frame(windows.select("start", *names)).unpivot(
        index="start", on=names, variable_name="quantile", value_name="latency_ms"
    )
    lines = alt.Chart(long).mark_line(point=True).encode(
        _time_axis(),
        alt.Y("latency_ms:Q", title="latency (ms)"),
        alt.Color("quantile:N", sort=names),
        tooltip=["start:T", "quantile:N", alt.Tooltip("latency_ms:Q", format=".1f")],
    )
    return _layer(*_spans(anomalies), lines).properties(width=WIDTH, height=HEIGHT,
                                                        title=title)


def _layer(*charts: alt.Chart) -> alt.LayerChart:
    """``alt.layer`` of charts without facet encodings (so never a ``FacetChart``)."""
    return cast(alt.LayerChart, alt.layer(*charts))


def _spans(anomalies: Iterable[Mapping[str, Any]]) -> list[alt.Chart]:
    rows = [{"start": str(a["start"]).rstrip("Z"), "end": str(a["end"]).rstrip("Z"),
             "rule": str(a.get("rule", "anomaly"))} for a in anomalies]  # fmt: skip
    if not rows:
        return []
    frame = pl.DataFrame(rows).with_columns(pl.col("start", "end").str.to_datetime())
    return [alt.Chart(frame).mark_rect(opacity=0.18, color="#d62728").encode(
        x=alt.X("start:T", scale=alt.Scale(type="utc")), x2="end:T", tooltip=["rule:N"]
    )]  # fmt: skip


def percentile_curve(
    table: pl.DataFrame, *, title: str = "Latency by percentile"
) -> alt.Chart:
    """Latency against percentile, one line per run (overlaid distributions).

    ``table`` (from :func:`streambench.report.tables.percentiles`): ``run``,
    ``percentile`` (0-100), ``latency_ms``, ``nines`` (-log10 of 1 - q). The x
    axis stretches the tail the way HdrHistogram plots do.
    """
    ticks = [0, 1, 2, 3, 4]
    labels = "{0: '0%', 1: '90%', 2: '99%', 3: '99.9%', 4: '99.99%'}[datum.value]"
    chart: alt.Chart = alt.Chart(table).mark_line(interpolate="step-after").encode(
        alt.X("nines:Q", title="percentile",
              axis=alt.Axis(values=ticks, labelExpr=labels)),
        alt.Y("latency_ms:Q", title="latency (ms)"),
        alt.Color("run:N"),
        tooltip=["run:N", alt.Tooltip("percentile:Q", format=".3f"),
                 alt.Tooltip("latency_ms:Q", format=".1f")],
    ).properties(width=WIDTH, height=HEIGHT, title=title)  # fmt: skip
    return chart


def latency_histogram(table: pl.DataFrame, *, title: str = "Latency distribution") -> alt.Chart:
    """Overlaid latency histograms: ``run``, ``bin_ms`` (lower edge), ``share`` (0-1)."""
    chart: alt.Chart = alt.Chart(table).mark_bar(opacity=0.5, binSpacing=0).encode(
        alt.X("bin_ms:Q", title="latency (ms, log bins)", scale=alt.Scale(type="log")),
        alt.Y("share:Q", title="share of replies", stack=None, axis=alt.Axis(format="%")),
        alt.Color("run:N"),
        tooltip=["run:N", "bin_ms:Q", alt.Tooltip("share:Q", format=".2%")],
    ).properties(width=WIDTH, height=HEIGHT, title=title)
    return chart


def throughput(windows: pl.DataFrame, *, title: str = "Throughput") -> alt.Chart:
    """Messages per second sent and received, per window (``throughput_*`` columns)."""
    names = [c for c in ("throughput_sent", "throughput_recv") if c in windows.columns]
    long = _frame(windows.select("start", *names)).unpivot(
        index="start", on=names, variable_name="direction", value_name="per_s"
    ).with_columns(pl.col("direction").str.strip_prefix("throughput_"))
    chart: alt.Chart = alt.Chart(long).mark_line(point=True).encode(
        _time_axis(),
        alt.Y("per_s:Q", title="messages/s"),
        alt.Color("direction:N"),
        tooltip=["start:T", "direction:N", alt.Tooltip("per_s:Q", format=".0f")],
    ).properties(width=WIDTH, height=HEIGHT, title=title)
    return chart


def error_rate(windows: pl.DataFrame, *, title: str = "Error and timeout rate") -> alt.Chart:
    """Share of messages sent that failed, per window (``error_rate``, ``timeout_rate``)."""
    names = [c for c in ("error_rate", "timeout_rate", "loss_rate") if c in windows.columns]
    long = _frame(windows.select("start", *names)).unpivot(
        index="start", on=names, variable_name="kind", value_name="rate"
    )
    chart: alt.Chart = alt.Chart(long).mark_line(point=True).encode(
        _time_axis(),
        alt.Y("rate:Q", title="share of sent", axis=alt.Axis(format="%")),
        alt.Color("kind:N"),
        tooltip=["start:T", "kind:N", alt.Tooltip("rate:Q", format=".2%")],
    ).properties(width=WIDTH, height=HEIGHT, title=title)
    return chart


def errors_by_kind(table: pl.DataFrame, *, title: str = "Errors by kind") -> alt.Chart:
    """Bars of ``count`` per ``kind`` (from :func:`streambench.report.tables.error_kinds`)."""
    chart: alt.Chart = alt.Chart(table).mark_bar().encode(
        alt.X("count:Q", title="events", axis=alt.Axis(format="d", tickMinStep=1)),
        alt.Y("kind:N", sort="-x", title=None),
        tooltip=["kind:N", "count:Q"],
    ).properties(width=WIDTH, height=max(40, 24 * max(table.height, 1)), title=title)
    return chart


def connection_churn(windows: pl.DataFrame, *, title: str = "Connection churn") -> alt.Chart:
    """Connects, reconnects and disconnects per window."""
    names = [c for c in ("connects", "reconnects", "disconnects") if c in windows.columns]
    long = _frame(windows.select("start", *names)).unpivot(
        index="start", on=names, variable_name="event", value_name="count"
    )
    chart: alt.Chart = alt.Chart(long).mark_line(point=True, interpolate="step-after").encode(
        _time_axis(),
        alt.Y("count:Q", title="per window", axis=alt.Axis(format="d", tickMinStep=1)),
        alt.Color("event:N"),
        tooltip=["start:T", "event:N", "count:Q"],
    ).properties(width=WIDTH, height=HEIGHT, title=title)
    return chart


def trend(
    history: pl.DataFrame, *, metric: str, title: str | None = None, fmt: str = ".1f"
) -> alt.Chart:
    """``metric`` across runs, one line per ``scenario``; x is the run's ``started`` time."""
    chart: alt.Chart = alt.Chart(_frame(history)).mark_line(point=True).encode(
        _time_axis("started", "run started (UTC)"),
        alt.Y(f"{metric}:Q", title=metric),
        alt.Color("scenario:N"),
        tooltip=["run_id:N", "scenario:N", alt.Tooltip(f"{metric}:Q", format=fmt)],
    ).properties(width=WIDTH, height=HEIGHT, title=title or f"{metric} by run")
    return chart


def verdict_grid(table: pl.DataFrame, *, title: str = "SLO history") -> alt.Chart:
    """Pass/fail cells: ``run`` (x, in order), ``check`` (y), ``passed`` (bool)."""
    order = table["run"].unique(maintain_order=True).to_list()
    chart: alt.Chart = alt.Chart(table).mark_rect(stroke="white").encode(
        alt.X("run:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40)),
        alt.Y("check:N", title=None),
        alt.Color("passed:N", scale=alt.Scale(domain=[True, False],
                                              range=["#2ca02c", "#d62728"])),
        tooltip=["run:N", "check:N", "passed:N", "detail:N"],
    ).properties(width=WIDTH, title=title)  # fmt: skip
    return chart


def deltas(table: pl.DataFrame, *, title: str = "Candidate vs baseline") -> alt.LayerChart:
    """Relative change per metric with its confidence interval.

    ``table`` (from :func:`streambench.report.tables.comparison_table`):
    ``metric``, ``relative`` (0.1 = +10%), ``relative_low``/``relative_high``
    and ``verdict`` (improved | unchanged | regressed | no-data).
    """
    data = table.drop_nulls("relative")
    base = alt.Chart(data).encode(alt.Y("metric:N", title=None, sort=None))
    bars = base.mark_rule(strokeWidth=2).encode(
        alt.X("relative_low:Q", title="change vs baseline", axis=alt.Axis(format="+%")),
        x2="relative_high:Q",
    )
    points = base.mark_point(filled=True, size=80).encode(
        alt.X("relative:Q"),
        alt.Color("verdict:N", scale=alt.Scale(
            domain=["improved", "unchanged", "regressed", "no-data"],
            range=["#2ca02c", "#7f7f7f", "#d62728", "#c7c7c7"])),
        tooltip=["metric:N", alt.Tooltip("relative:Q", format="+.1%"),
                 alt.Tooltip("relative_low:Q", format="+.1%"),
                 alt.Tooltip("relative_high:Q", format="+.1%"), "verdict:N"],
    )  # fmt: skip
    zero = alt.Chart(pl.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    return _layer(zero, bars, points).properties(width=WIDTH, title=title)


LABEL_CHARS = 48  # longer fingerprints are shortened in the middle on chart axes


def short_label(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` shortened to ``limit`` characters by an ellipsis in the middle, so a long
    fingerprint keeps its rule (start) and its distinguishing end readable."""
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 3
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


def _labels(names: list[str]) -> dict[str, str]:
    """Short, still distinct labels for ``names``."""
    labels: dict[str, str] = {}
    for name in sorted(set(names)):
        label = short_label(name)
        while label in labels.values():
            label = f"{short_label(name, LABEL_CHARS - 3)} #{len(labels)}"
        labels[name] = label
    return labels


NICE_WINDOWS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def window_for(duration_s: float, *, at_most: int = 600) -> float:
    """A window length (seconds) that shows a run of ``duration_s`` in at most
    ``at_most`` windows: 1 s for short runs, a minute or more for long soaks."""
    for length in NICE_WINDOWS_S:
        if duration_s / length <= at_most:
            return float(length)
    return float(NICE_WINDOWS_S[-1])


def occurrences(table: pl.DataFrame, *, title: str = "Occurrences") -> alt.Chart:
    """Anomalies across runs: ``started`` (run start), ``fingerprint``, ``count``,
    ``severity`` (from :func:`streambench.report.history.occurrences`).
    Fingerprints longer than :data:`LABEL_CHARS` are shortened on the axis (see
    :func:`short_label`); the tooltip shows them whole."""
    labels = _labels(table["fingerprint"].to_list())
    table = table.with_columns(label=pl.col("fingerprint").replace_strict(labels,
                                                                            default=None))
    chart: alt.Chart = alt.Chart(_frame(table)).mark_circle(opacity=0.8).encode(
        _time_axis("started", "run started (UTC)"),
        alt.Y("label:N", title=None, sort=sorted(set(labels.values())),
              axis=alt.Axis(labelLimit=360)),
        alt.Size("count:Q", legend=alt.Legend(format="d")),
        alt.Color("severity:N", scale=alt.Scale(
            domain=["info", "warning", "error", "critical"],
            range=["#9ecae9", "#f2cf5b", "#f58518", "#d62728"])),
        tooltip=["run_id:N", "fingerprint:N", "count:Q", "severity:N"],
    ).properties(width=WIDTH, title=title)  # fmt: skip
    return chart


def soak_health(table: pl.DataFrame, *, title: str = "Soak health") -> alt.VConcatChart:
    """Memory, open files and parts written per process over the run (from
    :func:`streambench.report.tables.soak_health`), one small chart each."""
    data = _frame(table)

    def panel(column: str, label: str) -> alt.Chart:
        chart: alt.Chart = alt.Chart(data).mark_line(point=True).encode(
            _time_axis(), alt.Y(f"{column}:Q", title=label),
            alt.Color("process:N", title="process"),
            tooltip=["start:T", "process:N", alt.Tooltip(f"{column}:Q", format=",.1f")],
        ).properties(width=WIDTH, height=140)  # fmt: skip
        return chart

    panels = [panel(c, label) for c, label in (("rss_mb", "resident memory (MB)"),
                                                ("open_files", "open files"),
                                                ("parts_written", "parts written"))
              if c in table.columns and table[c].drop_nulls().len()]  # fmt: skip
    return alt.vconcat(*panels).properties(title=title)


def live_series(
    windows: pl.DataFrame, *, columns: Iterable[str], title: str, y_title: str
) -> alt.Chart:
    """A small line chart of a live run: ``columns`` of the per-window table over time."""
    names = [c for c in columns if c in windows.columns]
    long = _frame(windows.select("start", *names)).unpivot(
        index="start", on=names, variable_name="series", value_name="value"
    ).drop_nulls("value")
    chart: alt.Chart = alt.Chart(long).mark_line(point=True).encode(
        _time_axis(),
        alt.Y("value:Q", title=y_title),
        alt.Color("series:N"),
    ).properties(width=380, height=160, title=title)
    return chart
