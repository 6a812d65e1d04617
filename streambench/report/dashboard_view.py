"""What the live dashboard shows, as HTML strings: no widgets touched here.

:func:`render` turns one :class:`~streambench.report.live.LiveState` into the
contents of every part of the dashboard (title, cards, three charts, the
alert list). It is pure and fast (the charts are hand-drawn SVG, see
:mod:`streambench.report.livechart`), so a refresh costs milliseconds.
"""

from __future__ import annotations

import html
from typing import Any

import polars as pl

from streambench.report.live import LiveState, grouped
from streambench.report.livechart import line_chart

CARDS = ("sent", "received", "pushes", "errors", "timeouts", "error rate",
         "p95 (last window)")
CARD_CSS = "padding:4px 12px;border-left:3px solid #4c78a8;min-width:110px"
MAX_ALERT_LINES = 8

# chart -> (title, unit, {column: label}); values are scaled by the unit's factor
CHARTS: dict[str, tuple[str, str, float, dict[str, str]]] = {
    "throughput": ("throughput", "messages per second", 1.0,
                   {"throughput_sent": "sent/s", "throughput_recv": "received/s"}),
    "latency": ("latency (from the intended send time)", "milliseconds", 1.0,
                {"p50_ms": "p50", "p95_ms": "p95", "p99_ms": "p99",
                 "lag_p99_ms": "schedule lag p99 (client)"}),
    "errors": ("errors and timeouts", "% of messages sent", 100.0,
               {"error_rate": "errors", "timeout_rate": "timeouts"}),
}  # fmt: skip


def card(label: str, value: str) -> str:
    return (f"<div style='{CARD_CSS}'><div style='color:#666;font-size:0.85em'>"
            f"{html.escape(label)}</div><div style='font-size:1.5em'>{html.escape(value)}</div>"
            "</div>")  # fmt: skip


def render(state: LiveState) -> dict[str, str]:
    """Every part's HTML for ``state``: ``title``, ``card:<label>``, the charts, ``alerts``."""
    views = {"title": title(state), "alerts": alerts_html(state)}
    values = {**{k: f"{v:,}" for k, v in state.counts.items()},
              "pushes": f"{state.counts.get('pushes', 0):,}",  # server pushes (SSE...)
              "error rate": f"{state.error_rate:.2%}",
              "p95 (last window)": last_p95(state.windows)}  # fmt: skip
    views.update({f"card:{label}": card(label, values[label]) for label in CARDS})
    views.update(charts(state.windows))
    return views


def title(state: LiveState) -> str:
    clock = f"{state.elapsed_s:.0f}" + (f"/{state.total_s:.0f}" if state.total_s else "") + " s"
    return (f"<b>{html.escape(state.run_id)}</b> {html.escape(state.scenario)} &middot; "
            f"{html.escape(state.status)} &middot; {clock}")


def charts(windows: pl.DataFrame) -> dict[str, str]:
    """The three charts over the windows' start, in seconds into the run."""
    out = {}
    for name, (heading, unit, factor, columns) in CHARTS.items():
        x: list[float] = []
        series: dict[str, list[float | None]] = {}
        if windows.height and "start" in windows.columns:
            starts = windows["start"].dt.epoch("ns")
            origin = starts.min()
            assert isinstance(origin, int)
            x = [(s - origin) / 1e9 for s in starts.to_list()]
            series = {label: _scaled(windows[column].to_list(), factor)
                      for column, label in columns.items() if column in windows.columns}
        out[name] = line_chart(x, series, title=heading, unit=unit)
    return out


def _scaled(values: list[Any], factor: float) -> list[float | None]:
    return [None if v is None else float(v) * factor for v in values]


def last_p95(windows: pl.DataFrame) -> str:
    if not windows.height or "p95_ms" not in windows.columns:
        return "-"
    values = windows["p95_ms"].drop_nulls()
    return f"{values[-1]:.1f} ms" if values.len() else "-"


def alerts_html(state: LiveState) -> str:
    """One line per fingerprint: severity, rule, how often, when last, the first fix."""
    groups = grouped(state.alerts)
    if not groups:
        return "<i>no anomalies so far</i>"
    items = []
    for group in groups[:MAX_ALERT_LINES]:
        times = f"&times;{group.count}, last at {group.last_seen_s:.0f} s" if group.count > 1 \
            else f"at {group.last_seen_s:.0f} s"
        tip = f"<br><small>try: {html.escape(group.tip)}</small>" if group.tip else ""
        items.append(f"<li>{html.escape(group.title)} ({times}){tip}</li>")
    more = len(groups) - MAX_ALERT_LINES
    rest = f"<li>and {more} more</li>" if more > 0 else ""
    return f"<b>anomalies</b><ul>{''.join(items)}{rest}</ul>"


def snapshot_html(views: dict[str, str]) -> str:
    """The whole view as one static HTML block (reports, where widgets cannot run)."""
    cards = "".join(views[f"card:{label}"] for label in CARDS)
    return (f"<div>{views['title']}</div><div style='display:flex'>{cards}</div>"
            f"<div>{views['throughput']}{views['latency']}{views['errors']}</div>"
            f"<div>{views['alerts']}</div>")  # fmt: skip
