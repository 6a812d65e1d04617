"""The Python API behind ``import streambench``: what notebooks and scripts call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streambench.analyze.summary import summarize
from streambench.capture.manifest import Manifest
from streambench.capture.names import check_run_id
from streambench.capture.status import RunStatus
from streambench.capture.store import Store, store_root
from streambench.errors import ConfigError
from streambench.generate.engine import run as engine
from streambench.generate.engine.lifecycle import RunControl
from streambench.generate.engine.progress import Progress
from streambench.scenario.load import load_scenario, with_overrides
from streambench.scenario.model import Scenario


@dataclass
class RunResult:
    """A finished run: how it ended, its manifest, and its summary (from the store)."""

    run_id: str
    status: RunStatus
    manifest: Manifest
    summary: dict[str, Any]


def summarized(outcome: engine.RunOutcome, store: Store) -> RunResult:
    """The engine's outcome with the summary a user sees (analysis runs here, not in it)."""
    summary = summarize(store.events(outcome.run_id), dict(outcome.manifest),
                        health=store.health(outcome.run_id))
    return RunResult(run_id=outcome.run_id, status=outcome.status, manifest=outcome.manifest,
                     summary=summary)


async def run_async(scenario: Scenario, *, store: Store, run_id: str | None = None,
                    on_progress: Callable[[Progress], None] | None = None,
                    control: RunControl | None = None,
                    handle_signals: bool = False) -> RunResult:
    """Run a resolved scenario on the running event loop, in this process; summarised."""
    outcome = await engine.run_async(scenario, store=store, run_id=run_id,
                                     on_progress=on_progress, control=control,
                                     handle_signals=handle_signals)
    return summarized(outcome, store)


def open_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """``store`` as a Store; None means ``$STREAMBENCH_STORE`` or ``./data`` like the CLI.

    A relative local path is found like :func:`locate` finds it, so ``./data``
    from a notebook in ``notebooks/`` is the repository's ``data/``.
    """
    if isinstance(store, Store):
        return store
    root = store_root(None if store is None else os.fspath(store))
    return Store(root if "://" in root else locate(root))


def as_scenario(scenario: Scenario | str | os.PathLike[str]) -> Scenario:
    """A Scenario, or one loaded from a YAML path (relative paths: see :func:`locate`)."""
    return scenario if isinstance(scenario, Scenario) else load_scenario(locate(scenario))


def locate(path: str | os.PathLike[str]) -> Path:
    """A relative ``path`` as meant from a notebook: from the working directory, else
    from its parents up to the repository root (the nearest folder above with a
    ``pyproject.toml`` or ``.git``). Returned unchanged when found nowhere, or when
    the working directory is in no repository."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    here = Path.cwd()
    root = next((d for d in here.parents
                 if (d / "pyproject.toml").exists() or (d / ".git").exists()), None)
    if root is None:
        return given
    for folder in here.parents:
        if (folder / given).exists():
            return folder / given
        if folder == root:
            break
    return given


def execute(scenario: Scenario, *, store: Store, workers: int | None = 1,
            cluster: str | None = None, run_id: str | None = None,
            on_progress: Callable[[Progress], None] | None = None,
            control: RunControl | None = None, handle_signals: bool = True) -> RunResult:
    """Run a resolved scenario in this process, in local worker processes, or on Dask.

    ``workers``: processes sharing the connections (None: every core; 1: this
    process). ``cluster``: ``tcp://scheduler:8786`` or ``local:N`` (see
    docs/scale.md); it takes precedence over ``workers``. ``control`` stops
    it from another thread (``control.stop_threadsafe``). Blocking.
    """
    from streambench.generate.scale.limits import raise_open_files
    from streambench.generate.scale.shards import default_workers

    if run_id is not None:
        check_run_id(run_id, where="run id")
    raise_open_files()
    processes = min(workers or default_workers(), scenario.load.connections)
    if scenario.fans_out:  # one ledger follows every member of every group: one process
        if cluster:
            raise ConfigError("--cluster: a fan-out scenario (expect: fanout) runs in one "
                              "process, which sees every member of every group")
        processes = 1
    if cluster:
        from streambench.generate.scale.cluster import run_cluster

        outcome = run_cluster(scenario, store=store, cluster=cluster, run_id=run_id,
                              on_progress=on_progress, control=control,
                              handle_signals=handle_signals)
    elif processes > 1:
        from streambench.generate.scale.local import run_workers

        outcome = run_workers(scenario, store=store, workers=processes, run_id=run_id,
                              on_progress=on_progress, control=control,
                              handle_signals=handle_signals)
    else:
        outcome = engine.run(scenario, store=store, run_id=run_id, on_progress=on_progress,
                             control=control, handle_signals=handle_signals)
    return summarized(outcome, store)


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
    source_addresses: list[str] | None = None,
    # scale
    workers: int | None = 1,
    cluster: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunResult:
    """Run a scenario (a Scenario or a YAML path) to the end; return its summary.

    Blocking. Inside a running event loop (a Jupyter cell) the run goes to a
    process of its own (:mod:`streambench.background`) and this one only
    reads its progress, so nothing here can stall the load generator; an
    interrupt (Kernel > Interrupt) stops the run, which keeps what it
    captured, and raises :class:`~streambench.errors.RunInterrupted`.
    ``workers`` defaults to 1 here (the CLI's default is every core).
    """
    resolved = with_overrides(as_scenario(scenario), rate=rate, connections=connections,
                              duration=duration, target=target, seed=seed,
                              source_addresses=source_addresses)
    if _loop_running():
        from streambench.background import BackgroundRun

        handle = BackgroundRun(resolved, store=open_store(store), run_id=run_id,
                               workers=workers, cluster=cluster)
        handle.on_progress = on_progress
        return handle.start().wait_interruptible()
    return execute(resolved, store=open_store(store), workers=workers, cluster=cluster,
                   run_id=run_id, on_progress=on_progress, handle_signals=False)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = ["RunResult", "as_scenario", "execute", "locate", "open_store", "run", "run_async",
           "summarized"]
