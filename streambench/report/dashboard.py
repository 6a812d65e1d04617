"""The live dashboard: ipywidgets over a :class:`~streambench.report.live.LiveRun`.

In JupyterLab::

    import streambench as sb
    dash = sb.Dashboard.start("scenarios/smoke.yaml")   # or sb.Dashboard.attach(run_id)
    dash                                                # shows it; it updates itself
    state = await dash.finished()                       # waits; the stop button still works

The run itself goes on in a process of its own (:mod:`streambench.background`):
the kernel only reads what it writes and reports, so drawing the dashboard
can never stall the load generator it shows.

The update path is one plain method, :meth:`Dashboard.refresh`: read what
the run wrote since the last call, then set the widgets. :meth:`watch` runs
it from the kernel's event loop after each progress report of the run
(about once a second; the first comes a quarter of a second after the first
send) or every ``interval_s`` for a run of another process, so the notebook
stays usable. :meth:`finished` awaits the end in a cell without blocking the
kernel (the stop button keeps working, also under Run All); :meth:`wait`
blocks until the end (scripts, tests). Every update carries a sequence
number and an older one never overwrites a newer one, so the view never
steps back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import threading
import time
from typing import Any

import ipywidgets as widgets

from streambench.capture.store import Store
from streambench.report import dashboard_view as view
from streambench.report.live import LiveRun, LiveState

Views = dict[str, str]


class Dashboard:
    """A live view of one run. Build it with :meth:`start` or :meth:`attach`.

    Widgets (public, so a test can assert on them): ``title``, ``progress``,
    ``counters`` (label -> HTML), ``throughput_chart``, ``latency_chart``,
    ``error_chart`` (HTML holding SVG), ``alerts`` (HTML), ``stop_button``,
    ``stop_note`` (why stopping is not possible here); ``widget`` is the whole
    box. ``state`` is the last :class:`LiveState` shown.
    """

    def __init__(self, live: LiveRun, *, interval_s: float = 1.0) -> None:
        self.live = live
        self.interval_s = interval_s
        self.state: LiveState | None = None
        self._poll_lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self._sequence = itertools.count()
        self._shown = -1
        self._progressed = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[LiveState] | None = None
        self.title = widgets.HTML()
        self.progress = widgets.FloatProgress(min=0.0, max=1.0, description="progress")
        self.counters = {label: widgets.HTML(view.card(label, "-")) for label in view.CARDS}
        self.throughput_chart = widgets.HTML()
        self.latency_chart = widgets.HTML()
        self.error_chart = widgets.HTML()
        self.alerts = widgets.HTML("<i>no anomalies so far</i>")
        self.stop_button = widgets.Button(description="Stop run", button_style="danger",
                                          icon="stop", disabled=live.handle is None)
        self.stop_button.on_click(lambda _button: self.stop())
        self.stop_note = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.title, self.stop_button, self.stop_note]),
            self.progress,
            widgets.HBox(list(self.counters.values())),
            widgets.HBox([self.throughput_chart, self.latency_chart]),
            widgets.HBox([self.error_chart, self.alerts]),
        ])  # fmt: skip
        if live.handle is not None:
            _chain_progress(live.handle, self._on_progress)
        else:
            self._explain_no_stop(None)

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
        workers: int | None = 1,
        interval_s: float = 1.0,
    ) -> Dashboard:
        """Start ``scenario`` (a Scenario or YAML path) in a process of its own and watch it.

        A relative path is looked up from the working directory (the
        notebook's folder), then its parents up to the repository root.
        """
        from streambench.api import as_scenario, open_store
        from streambench.background import start_run
        from streambench.scenario.load import with_overrides

        resolved = with_overrides(as_scenario(scenario), rate=rate, connections=connections,
                                  duration=duration)  # fmt: skip
        opened = open_store(store)
        handle = start_run(resolved, store=opened, run_id=run_id, workers=workers)
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
            return cls(LiveRun(opened.resolve_run(run, running=True), opened),
                       interval_s=interval_s)
        return cls(LiveRun(run.run_id, run.store, handle=run), interval_s=interval_s)

    # -- updating --------------------------------------------------------------
    def refresh(self) -> LiveState:
        """Poll the run once and update every widget; return the new state."""
        number, state, views = self._poll()
        self._apply(number, state, views)
        return state

    def _poll(self) -> tuple[int, LiveState, Views]:
        """Read and render, one poller at a time; numbered in the order states were read."""
        with self._poll_lock:
            state = self.live.poll()
            return next(self._sequence), state, view.render(state)

    def wait(self, *, timeout: float | None = None) -> LiveState:
        """Refresh after each progress report (about once a second) until the run ends.

        Blocking: in a notebook prefer ``await dash.finished()``, which keeps the
        kernel (and so the stop button) responsive. Raises TimeoutError after
        ``timeout`` seconds if the run is still going.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        state = self.refresh()
        while not state.done:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.live.run_id} still running after {timeout}s")
            self._progressed.wait(self.interval_s)
            self._progressed.clear()
            state = self.refresh()
        return state

    def watch(self) -> asyncio.Task[LiveState] | None:
        """Refresh from the running event loop (Jupyter) until the run ends; the task's
        result is the final state. None (nothing scheduled) outside an event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if self._task is None or (self._task.done() and self._loop is not loop):
            self._loop, self._wake = loop, asyncio.Event()
            self._task = loop.create_task(self._watch(), name=f"dashboard[{self.live.run_id}]")
        return self._task

    async def finished(self) -> LiveState:
        """Await the end of the run, refreshing meanwhile; the final state.

        The kernel stays free while this waits, so a click on the stop button
        is handled at once (JupyterLab, also under Run All). Bound it with
        ``asyncio.timeout(...)`` if need be; cancelling the wait leaves the
        updates (and the run) going.
        """
        task = self.watch()
        assert task is not None  # we are in a running loop
        return await asyncio.shield(task)

    async def _watch(self) -> LiveState:
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dashboard.poll",
                                                     initializer=_lower_priority)
        try:
            while True:
                number, state, views = await loop.run_in_executor(pool, self._poll)
                self._apply(number, state, views)
                if state.done:
                    return state
                await self._next_report()
        finally:
            pool.shutdown(wait=False)  # never block the kernel's loop on a last poll

    async def _next_report(self) -> None:
        """Until the next progress report, or the interval for a run of another process."""
        assert self._wake is not None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.interval_s)

    def _on_progress(self, _progress: Any) -> None:
        """A progress report arrived (on the run's reader thread): refresh soon."""
        self._progressed.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def stop(self) -> bool:
        """Stop the run (only one started from this process); True if asked to stop."""
        stopped = self.live.stop()
        if stopped:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopping..."
        return stopped

    def _apply(self, number: int, state: LiveState, views: Views) -> None:
        with self._apply_lock:
            if number < self._shown:  # an older poll finished late: never step back
                return
            self._shown = number
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
            if self.live.handle is None:
                self._explain_no_stop(state)
            if state.done:
                self._show_end(state)

    def _show_end(self, state: LiveState) -> None:
        if state.status == "completed":
            self.progress.value = 1.0
        self.stop_button.disabled = True
        self.stop_button.description = state.status
        self.stop_note.value = ""

    def _explain_no_stop(self, state: LiveState | None) -> None:
        """Attached to a run of another process: say why there is no stop here."""
        where = ""
        if state is not None and state.pid:
            where = f" (pid {state.pid}" + (f" on {state.host}" if state.host else "") + ")"
        why = (f"Stop is disabled: this run belongs to another process{where}; stop it "
               "there (Ctrl-C in its terminal).")
        self.stop_button.tooltip = why
        self.stop_note.value = f"<small style='color:#666'>{why}</small>"

    # -- display ---------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.watch()
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):  # where widgets cannot run (HTML), say what this was
            bundle["text/plain"] = f"live dashboard of run {self.live.run_id}"
        return bundle

    def snapshot(self) -> Any:
        """The current view as static HTML (for reports, where widgets cannot run)."""
        from IPython.core.display import HTML

        state = self.state or self.refresh()
        return HTML(view.snapshot_html(view.render(state)))


def _lower_priority() -> None:
    """The dashboard's reading and drawing thread yields the CPU to everything else
    (on Linux a thread has its own nice value): on a busy machine the run's own
    processes and the target come first."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _chain_progress(handle: Any, hook: Any) -> None:
    """Also call ``hook`` whenever the run reports progress (keeps any earlier hook)."""
    previous = handle.on_progress

    def chained(progress: Any) -> None:
        if previous is not None:
            previous(progress)
        hook(progress)

    handle.on_progress = chained
