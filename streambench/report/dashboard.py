"""The live dashboard: ipywidgets over a :class:`~streambench.report.live.LiveRun`.

In JupyterLab::

    import streambench as sb
    dash = sb.Dashboard.start("scenarios/smoke.yaml")   # or sb.Dashboard.attach(run_id)
    dash                                                # shows it; it updates itself

The update path is one plain method, :meth:`Dashboard.refresh`: read what
the run wrote since the last call, then set the widgets (counters, progress,
throughput and latency charts as inline SVG, error rate, anomaly alerts).
:meth:`watch` calls it about once a second from the kernel's event loop (so
the notebook stays usable and the stop button works); :meth:`wait` calls it
in a blocking loop until the run ends (scripts, papermill, tests).
"""

from __future__ import annotations

import asyncio
import html
import os
import threading
from typing import Any

import ipywidgets as widgets

from streambench.capture.store import Store
from streambench.report import charts
from streambench.report.live import Alert, LiveRun, LiveState

_CARDS = ("sent", "received", "errors", "timeouts", "error rate", "p95 (last window)")
_CARD_CSS = "padding:4px 12px;border-left:3px solid #4c78a8;min-width:110px"


def _card(label: str, value: str) -> str:
    return (f"<div style='{_CARD_CSS}'><div style='color:#666;font-size:0.85em'>"
            f"{html.escape(label)}</div><div style='font-size:1.5em'>{html.escape(value)}</div>"
            "</div>")  # fmt: skip


class Dashboard:
    """A live view of one run. Build it with :meth:`start` or :meth:`attach`.

    Widgets (public, so a test can assert on them): ``title``, ``progress``,
    ``counters`` (label -> HTML), ``throughput_chart``, ``latency_chart``,
    ``error_chart`` (HTML holding SVG), ``alerts`` (HTML), ``stop_button``;
    ``widget`` is the whole box. ``state`` is the last :class:`LiveState`.
    """

    def __init__(self, live: LiveRun, *, interval_s: float = 1.0) -> None:
        self.live = live
        self.interval_s = interval_s
        self.state: LiveState | None = None
        self._lock = threading.Lock()
        self._progressed = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.title = widgets.HTML()
        self.progress = widgets.FloatProgress(min=0.0, max=1.0, description="progress")
        self.counters = {label: widgets.HTML(_card(label, "-")) for label in _CARDS}
        self.throughput_chart = widgets.HTML()
        self.latency_chart = widgets.HTML()
        self.error_chart = widgets.HTML()
        self.alerts = widgets.HTML("<i>no anomalies so far</i>")
        self.stop_button = widgets.Button(description="Stop run", button_style="danger",
                                          icon="stop", disabled=live.handle is None)
        self.stop_button.on_click(lambda _button: self.stop())
        self.widget = widgets.VBox([
            widgets.HBox([self.title, self.stop_button]),
            self.progress,
            widgets.HBox(list(self.counters.values())),
            widgets.HBox([self.throughput_chart, self.latency_chart]),
            widgets.HBox([self.error_chart, self.alerts]),
        ])  # fmt: skip
        if live.handle is not None:
            _chain_progress(live.handle, self._progressed)

    # -- construction ----------------------------------------------------------
    @classmethod
    def start(
        cls,
        scenario: Any,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        run_id: str | None = None,
        rate: float | None = None,
        connections: int | None = None,
        duration: float | None = None,
        interval_s: float = 1.0,
    ) -> Dashboard:
        """Start ``scenario`` (a Scenario or YAML path) in the background and watch it."""
        from streambench.api import as_scenario, open_store
        from streambench.background import start_run
        from streambench.scenario.load import with_overrides

        resolved = with_overrides(as_scenario(scenario), rate=rate, connections=connections,
                                  duration=duration)  # fmt: skip
        opened = open_store(store)
        handle = start_run(resolved, store=opened, run_id=run_id)
        return cls(LiveRun(handle.run_id, opened, handle=handle), interval_s=interval_s)

    @classmethod
    def attach(
        cls,
        run: Any,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        interval_s: float = 1.0,
    ) -> Dashboard:
        """Watch a run already going: a :class:`~streambench.BackgroundRun` of this
        process (it can be stopped), or a run id another process is writing."""
        from streambench.api import open_store

        if isinstance(run, str):
            opened = open_store(store)
            return cls(LiveRun(opened.resolve_run(run), opened), interval_s=interval_s)
        return cls(LiveRun(run.run_id, run.store, handle=run), interval_s=interval_s)

    # -- updating --------------------------------------------------------------
    def refresh(self) -> LiveState:
        """Poll the run once and update every widget; return the new state."""
        state, views = self._poll()
        self._apply(state, views)
        return state

    def _poll(self) -> tuple[LiveState, dict[str, str]]:
        """Read and render under the lock (one poller at a time; never held across
        an ``await``, so a blocking :meth:`wait` and the :meth:`watch` task coexist)."""
        with self._lock:
            state = self.live.poll()
            return state, _render(state)

    def wait(self, *, timeout: float | None = None) -> LiveState:
        """Refresh after each progress report (about once a second) until the run ends.

        Blocking. For a run of another process it polls every ``interval_s``.
        Raises TimeoutError after ``timeout`` seconds if the run is still going.
        """
        deadline = None if timeout is None else _now() + timeout
        state = self.refresh()
        while not state.done:
            if deadline is not None and _now() > deadline:
                raise TimeoutError(f"run {self.live.run_id} still running after {timeout}s")
            self._progressed.wait(self.interval_s)
            self._progressed.clear()
            state = self.refresh()
        return state

    def watch(self) -> asyncio.Task[None] | None:
        """Refresh about every ``interval_s`` from the running event loop (Jupyter)
        until the run ends; None (nothing scheduled) outside an event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._watch(), name=f"dashboard[{self.live.run_id}]")
        return self._task

    async def _watch(self) -> None:
        while True:
            state, views = await asyncio.to_thread(self._poll)
            self._apply(state, views)
            if state.done:
                return
            await asyncio.sleep(self.interval_s)

    def stop(self) -> bool:
        """Stop the run (only a run of this process); True if asked to stop."""
        stopped = self.live.stop()
        if stopped:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopping..."
        return stopped

    def _apply(self, state: LiveState, views: dict[str, str]) -> None:
        self.state = state
        self.title.value = views["title"]
        if state.total_s:
            self.progress.value = min(state.elapsed_s / state.total_s, 1.0)
        for label, widget in self.counters.items():
            widget.value = views[f"card:{label}"]
        self.throughput_chart.value = views["throughput"]
        self.latency_chart.value = views["latency"]
        self.error_chart.value = views["errors"]
        self.alerts.value = views["alerts"]
        if state.done:
            self.progress.value = 1.0 if state.status == "completed" else self.progress.value
            self.stop_button.disabled = True
            self.stop_button.description = state.status

    # -- display ---------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.watch()
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):  # where widgets cannot run (HTML), say what this was
            bundle["text/plain"] = f"live dashboard of run {self.live.run_id}"
        return bundle

    def snapshot(self) -> Any:
        """The current view as static HTML (for reports, where widgets cannot run)."""
        from IPython.display import HTML

        state = self.state or self.refresh()
        views = _render(state)
        cards = "".join(views[f"card:{label}"] for label in _CARDS)
        return HTML(f"<div>{views['title']}</div><div style='display:flex'>{cards}</div>"
                    f"<div>{views['throughput']}{views['latency']}{views['errors']}</div>"
                    f"<div>{views['alerts']}</div>")  # fmt: skip


def _render(state: LiveState) -> dict[str, str]:
    """Widget contents (HTML strings) for a state: the slow part, no widgets touched."""
    windows = state.windows
    views = {
        "title": (f"<b>{html.escape(state.run_id)}</b> {html.escape(state.scenario)} &middot; "
                  f"{html.escape(state.status)} &middot; {state.elapsed_s:.0f}"
                  f"{f'/{state.total_s:.0f}' if state.total_s else ''} s"),
        "alerts": _alerts_html(state.alerts),
    }  # fmt: skip
    values = {**{k: f"{v:,}" for k, v in state.counts.items()},
              "error rate": f"{state.error_rate:.2%}", "p95 (last window)": _last_p95(windows)}
    views.update({f"card:{label}": _card(label, values[label]) for label in _CARDS})
    if windows.height:
        series = windows
        views["throughput"] = charts.to_svg(charts.live_series(
            series, columns=("throughput_sent", "throughput_recv"), title="throughput",
            y_title="messages/s"))  # fmt: skip
        views["latency"] = charts.to_svg(charts.live_series(
            series, columns=("p50_ms", "p95_ms", "p99_ms"), title="latency",
            y_title="ms"))  # fmt: skip
        views["errors"] = charts.to_svg(charts.live_series(
            series, columns=("error_rate", "timeout_rate"), title="error rate",
            y_title="share of sent"))  # fmt: skip
    else:
        views["throughput"] = views["latency"] = views["errors"] = "<i>waiting for data</i>"
    return views


def _last_p95(windows: Any) -> str:
    if not windows.height or "p95_ms" not in windows.columns:
        return "-"
    values = windows["p95_ms"].drop_nulls()
    return f"{values[-1]:.1f} ms" if values.len() else "-"


def _alerts_html(alerts: tuple[Alert, ...]) -> str:
    if not alerts:
        return "<i>no anomalies so far</i>"
    items = []
    for alert in reversed(alerts[-10:]):
        tips = alert.anomaly.get("suggestions") or []
        tip = f"<br><small>try: {html.escape(tips[0]['title'] or tips[0]['fix'])}</small>" \
            if tips else ""
        items.append(f"<li>{alert.seen_at_s:.0f} s: {html.escape(alert.title)}{tip}</li>")
    return f"<b>anomalies</b><ul>{''.join(items)}</ul>"


def _chain_progress(handle: Any, event: threading.Event) -> None:
    """Also set ``event`` whenever the run reports progress (keeps any earlier hook)."""
    previous = handle.on_progress

    def hook(progress: Any) -> None:
        if previous is not None:
            previous(progress)
        event.set()

    handle.on_progress = hook


def _now() -> float:
    import time

    return time.monotonic()
