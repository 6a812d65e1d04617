"""The nightly entry point: every report of the last night's runs in one folder.

``render_nightly(out=...)`` picks the runs that started within ``since``
seconds, renders the ``scenario_report`` of each, the ``nightly`` overview
of them all, and writes ``index.html`` linking everything, with each run's
status and headline numbers. One report failing does not stop the others:
it is listed in the index with its error, and :attr:`NightlyResult.failed`
says so (``streambench nightly`` then exits 1).
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streambench.capture.manifest import parse_time
from streambench.errors import ReportError
from streambench.report.execute import render_report, safe_name


@dataclass
class NightlyResult:
    """What :func:`render_nightly` produced: the index page and one entry per report."""

    index: Path
    reports: list[dict[str, Any]] = field(default_factory=list)  # run_id, scenario, html | error

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r.get("error")]


def recent_runs(store: Any, *, since_s: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """Manifests of the runs that started in the last ``since_s`` seconds, oldest first."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=since_s)
    chosen = []
    for manifest in store.runs():
        started = parse_time(manifest.get("started"))
        if started is not None and started >= cutoff:
            chosen.append(manifest)
    return chosen


def render_nightly(
    *,
    out: str | os.PathLike[str],
    store: str | os.PathLike[str] | None = None,
    since_s: float = 86_400.0,
    show_code: bool = False,
    overview: bool = True,
    log: Callable[[str], None] | None = None,
) -> NightlyResult:
    """Render the reports of the runs of the last ``since_s`` seconds into ``out``.

    Files: ``<out>/index.html``, ``<out>/nightly.html`` (the overview, when
    ``overview`` and there are runs), ``<out>/scenario_report-<run id>.html``
    per run, each beside its executed ``.ipynb``.
    """
    from streambench.api import open_store

    opened = open_store(store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = recent_runs(opened, since_s=since_s)
    say = log or (lambda _line: None)
    say(f"{len(runs)} run(s) in the last {since_s / 3600:g} h in {opened.root}")
    result = NightlyResult(index=out / "index.html")
    if overview and runs:
        result.reports.append(_one(
            lambda: render_report(None, notebook="nightly", out=out, store=opened.root,
                                  show_code=show_code, stem="nightly", log=log,
                                  parameters={"since_hours": since_s / 3600}),
            {"run_id": None, "scenario": "all", "title": "nightly overview"}, say))  # fmt: skip
    for number, manifest in enumerate(runs, 1):
        run_id = str(manifest["run_id"])
        say(f"[{number}/{len(runs)}] {run_id}")
        result.reports.append(_one(
            functools.partial(render_report, run_id, out=out, store=opened.root,
                              show_code=show_code, log=log),
            _entry(opened, manifest), say))  # fmt: skip
    result.index.write_text(index_html(result.reports, store=opened.root, since_s=since_s),
                            encoding="utf-8")  # fmt: skip
    say(f"index: {result.index}")
    return result


def _one(render: Callable[[], Path], entry: dict[str, Any],
         say: Callable[[str], None]) -> dict[str, Any]:
    try:
        entry["html"] = render().name
    except ReportError as exc:
        entry["error"] = str(exc)
        say(f"failed: {exc}")
    return entry


def _entry(store: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """Index row of one run: its status and headline numbers from the summary."""
    from streambench.analyze.summary import summarize

    run_id = str(manifest["run_id"])
    entry: dict[str, Any] = {"run_id": run_id, "title": run_id,
                             "scenario": (manifest.get("scenario") or {}).get("name", ""),
                             "status": manifest.get("status", ""),
                             "started": manifest.get("started", "")}  # fmt: skip
    try:
        summary = summarize(store.events(run_id), manifest)
    except Exception as exc:  # an unreadable run is still listed, with why
        entry["numbers"] = f"unreadable: {exc}"
        return entry
    latency = summary.get("latency_ms") or {}
    entry["numbers"] = (f"sent {summary['sent']:,} · p95 {_ms(latency.get('p95'))} · "
                        f"p99 {_ms(latency.get('p99'))} · errors {summary['error_rate']:.2%}")
    return entry


def index_html(reports: list[dict[str, Any]], *, store: str, since_s: float) -> str:
    """The index page: one row per report, links relative to the folder. No network."""
    rows = []
    for r in reports:
        link = (f"<a href='{html.escape(r['html'])}'>{html.escape(r['title'])}</a>"
                if r.get("html") else html.escape(r["title"]))  # fmt: skip
        note = (f"<span class='error'>{html.escape(r['error'])}</span>" if r.get("error")
                else html.escape(r.get("numbers", "")))  # fmt: skip
        rows.append(f"<tr><td>{link}</td><td>{html.escape(str(r.get('scenario', '')))}</td>"
                    f"<td>{html.escape(str(r.get('status', '')))}</td>"
                    f"<td>{html.escape(str(r.get('started', '')))}</td><td>{note}</td></tr>")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>streambench nightly {stamp}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}} .error{{color:#b00}}</style>
</head><body><h1>streambench nightly</h1>
<p>{len(reports)} report(s) for the runs of the last {since_s / 3600:g} h in
<code>{html.escape(store)}</code>, rendered {stamp}.</p>
<table><tr><th>report</th><th>scenario</th><th>status</th><th>started</th><th>numbers</th></tr>
{"".join(rows) or "<tr><td colspan=5>no runs</td></tr>"}
</table></body></html>
"""


def nightly_folder(root: str | os.PathLike[str], *, now: datetime | None = None) -> Path:
    """``<root>/<YYYY-MM-DD>``: the default output folder of one night."""
    return Path(root) / safe_name((now or datetime.now(UTC)).strftime("%Y-%m-%d"))


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} ms"

