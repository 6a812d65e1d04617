"""The Python API behind ``import streambench``: what notebooks and scripts call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from streambench.capture.store import Store
from streambench.cli_common import store_root
from streambench.generate.progress import Progress
from streambench.generate.runner import RunResult, run_async
from streambench.generate.runner import run as _run_blocking
from streambench.scenario.load import load_scenario, with_overrides
from streambench.scenario.model import Scenario


def open_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """``store`` as a Store; None means ``$STREAMBENCH_STORE`` or ``./data`` like the CLI."""
    if isinstance(store, Store):
        return store
    return Store(store_root(None if store is None else os.fspath(store)))


def as_scenario(scenario: Scenario | str | os.PathLike[str]) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def run(
    scenario: Scenario | str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    # overrides, as on the command line
    rate: float | None = None,
    connections: int | None = None,
    duration: float | None = None,
    target: str | None = None,
    seed: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run a scenario (a Scenario or a YAML path) to the end; return its summary.

    Blocking. Inside a running event loop (a Jupyter cell) the run gets its
    own loop in a worker thread, so the same call works in a notebook.
    """
    resolved = with_overrides(as_scenario(scenario), rate=rate, connections=connections,
                              duration=duration, target=target, seed=seed)
    if _loop_running():
        from streambench.generate.background import BackgroundRun

        handle = BackgroundRun(resolved, store=open_store(store), run_id=run_id)
        if on_progress is not None:
            handle.on_progress = on_progress
        return handle.start().result()
    return _run_blocking(resolved, store=open_store(store), run_id=run_id,
                         on_progress=on_progress, handle_signals=False)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["as_scenario", "open_store", "run", "run_async"]
