"""streambench.report: notebooks as reports, charts drawn offline, the live dashboard.

* :mod:`~streambench.report.charts` - altair charts of runs, rendered as inline SVG;
* :mod:`~streambench.report.tables` - the small tables those charts draw;
* :mod:`~streambench.report.history` - runs across time (trends, SLO history,
  anomaly recurrence) for the nightly and anomaly-study reports;
* :mod:`~streambench.report.execute` - papermill execution and offline HTML
  (``streambench report``);
* :mod:`~streambench.report.nightly` - every report of last night's runs with
  an index page (``streambench nightly``);
* :mod:`~streambench.report.dashboard` / :mod:`~streambench.report.live` - the
  ipywidgets dashboard and the incremental reader of a running run under it;
* :mod:`~streambench.report.examples` - the short embedded runs notebooks use
  when they are given no run.

Public names load lazily (no import-time work), like the top-level package.
"""

from __future__ import annotations

from streambench._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Alert": "streambench.report.live",
    "charts": "streambench.report.charts",
    "history": "streambench.report.history",
    "tables": "streambench.report.tables",
    "Dashboard": "streambench.report.dashboard",
    "LiveRun": "streambench.report.live",
    "LiveState": "streambench.report.live",
    "NOTEBOOKS": "streambench.report.execute",
    "NightlyResult": "streambench.report.nightly",
    "ReportError": "streambench.errors",
    "example_history": "streambench.report.examples",
    "example_runs": "streambench.report.examples",
    "example_scenario": "streambench.report.examples",
    "example_store": "streambench.report.examples",
    "execute_notebook": "streambench.report.execute",
    "render_nightly": "streambench.report.nightly",
    "render_report": "streambench.report.execute",
    "to_html": "streambench.report.execute",
}

__all__ = [
    "NOTEBOOKS",
    "Alert",
    "Dashboard",
    "LiveRun",
    "LiveState",
    "NightlyResult",
    "ReportError",
    "charts",
    "example_history",
    "example_runs",
    "example_scenario",
    "example_store",
    "execute_notebook",
    "history",
    "render_nightly",
    "render_report",
    "tables",
    "to_html",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
