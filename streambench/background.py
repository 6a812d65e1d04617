"""A run in a background thread: for notebooks and dashboards that must stay responsive.

``start_run()`` returns at once with a :class:`BackgroundRun`; the run has
its own event loop in its own thread. ``latest`` is the newest progress
snapshot (about once a second), ``stop()`` ends the run early (it is then
marked aborted, with everything captured kept), ``result()`` waits for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from streambench.api import RunResult, open_store, run_async
from streambench.capture.store import Store
from streambench.generate.engine.lifecycle import RunControl
from streambench.generate.engine.progress import Progress
from streambench.generate.engine.run import new_run_id
from streambench.scenario.model import Scenario


class BackgroundRun:
    def __init__(self, scenario: Scenario, *, store: Store, run_id: str | None = None) -> None:
        self.scenario = scenario
        self.store = store
        self.run_id = run_id or new_run_id(scenario.name)
        self.latest: Progress | None = None
        # called with each snapshot, in the run's thread
        self.on_progress: Callable[[Progress], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control: RunControl | None = None
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"streambench-run-{self.run_id}",
                                        daemon=True)

    def start(self) -> BackgroundRun:
        self._thread.start()
        self._started.wait()
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()
            loop.close()

    async def _run(self) -> None:
        self._control = RunControl()
        self._started.set()
        self._result = await run_async(self.scenario, store=self.store, run_id=self.run_id,
                                       on_progress=self._on_progress, control=self._control)

    def _on_progress(self, progress: Progress) -> None:
        self.latest = progress
        if self.on_progress is not None:
            self.on_progress(progress)

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self, reason: str = "stopped by user") -> None:
        """Ask the run to end now; it flushes what it captured and is marked aborted."""
        loop, control = self._loop, self._control
        if loop is not None and control is not None and not loop.is_closed():
            loop.call_soon_threadsafe(control.stop, reason)

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to finish and return its result (re-raises its error)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"run {self.run_id} still running after {timeout}s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def start_run(scenario: Scenario, *, store: Store | str | None = None,
              run_id: str | None = None) -> BackgroundRun:
    """Start a run in a background thread and return its handle at once."""
    return BackgroundRun(scenario, store=open_store(store), run_id=run_id).start()
