"""When compaction runs: at the end of a run, every few minutes in a long one, on demand.

The engine calls two things (the mechanism is in compact.py):

* :func:`compacting` around the part of a run that writes: for a run
  planned longer than ``capture.compact_every`` (default five minutes) it
  runs :class:`PeriodicCompaction`, a separate process that compacts the run
  every interval, so a day-long run never holds more than a few hundred
  files. A process, not a thread: the run's event loop must not share its
  GIL with Parquet encoding while it measures. It stops when told, or when
  its parent dies.
* :func:`compact_ended_run` once the writers are closed, before the last
  manifest: the run ends with a few large files. Skipped for a run that
  failed (a full disk needs no more writes) or was stopped by a signal (the
  user wants out: ``streambench compact`` later); a failure is logged, never
  fails the run: the small parts stay readable.

``streambench compact RUN`` (:func:`compact_finished`) compacts a run left
``aborted``/stale by a crash; it refuses a run still being written. Every
compaction that changed something is recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from typing import Any

from streambench.capture import audit
from streambench.capture.compact import CompactionReport, compact_run
from streambench.errors import StreambenchError
from streambench.logs import get_logger

DEFAULT_EVERY_S = 300.0
log = get_logger("streambench.compaction")


def compact_finished(store: Any, run: str) -> CompactionReport:
    """Compact a run that is no longer written (``latest`` allowed); audited."""
    run_id = store.resolve_run(run)
    store.finished_manifest(run_id)  # RunInProgress while it is written
    return compact_audited(store, run_id, trigger="command")


def compact_audited(store: Any, run_id: str, *, trigger: str, **options: Any) -> CompactionReport:
    """:func:`compact_run`, then an audit entry if anything changed."""
    report = compact_run(store, run_id, **options)
    if report.partitions:
        summary = report.to_dict()
        audit.record(store, "compact", arguments={"run_id": run_id, "trigger": trigger},
                     changed={"runs": [run_id], "partitions": len(report.partitions),
                              "files": summary["files_before"] - summary["files_after"],
                              "rows": summary["rows"], "bytes": summary["bytes"]},
                     details={"files_before": summary["files_before"],
                              "files_after": summary["files_after"]})
    return report


def compact_ended_run(store: Any, run_id: str, *, status: str,
                      reason: str | None = None) -> CompactionReport | None:
    """End-of-run compaction: best effort, logged on failure, never raised."""
    if status == "failed" or (reason or "").startswith("SIG"):
        return None
    try:
        return compact_audited(store, run_id, trigger="end of run")
    except StreambenchError as exc:
        log.warning("run %s: not compacted (%s); its parts stay as written", run_id, exc,
                    extra={"run_id": run_id})
        return None


@contextlib.contextmanager
def compacting(store: Any, run_id: str, *, every_s: float,
               planned_s: float | None) -> Iterator[None]:
    """Periodic compaction around a run planned longer than one interval (else nothing)."""
    if every_s <= 0 or (planned_s is not None and planned_s <= every_s):
        yield
        return
    root = os.path.abspath(store.root) if store.local else store.root
    with PeriodicCompaction(root, run_id, every_s=every_s):
        yield


class PeriodicCompaction:
    """Compacts one run every ``every_s`` seconds from a child process.

    Use as a context manager around the part of a run that writes::

        with PeriodicCompaction(store.root, run_id):
            ...  # the run
    """

    def __init__(self, root: str, run_id: str, *, every_s: float = DEFAULT_EVERY_S) -> None:
        self.root = root
        self.run_id = run_id
        self.every_s = every_s
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._process = context.Process(
            target=compaction_loop, args=(root, run_id, every_s, self._stop, os.getpid()),
            name=f"streambench-compact-{run_id}", daemon=True)

    def __enter__(self) -> PeriodicCompaction:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the loop to stop after the compaction in progress, and wait for it."""
        if self._process.pid is None:
            return
        self._stop.set()
        self._process.join(timeout_s)
        if self._process.is_alive():  # stuck on storage: a later compaction finishes it
            self._process.kill()
            self._process.join()


def compaction_loop(root: str, run_id: str, every_s: float, stop: Any, parent: int) -> None:
    """The child process: compact, wait, repeat; until ``stop`` or the parent is gone."""
    from streambench.capture.store import Store

    store = Store(root)
    due = time.monotonic() + every_s
    # Wake at least every second so a parent killed with -9 is noticed quickly.
    while not stop.wait(min(every_s, 1.0)):
        if os.getppid() != parent:
            return  # the run is dead: `streambench compact` is for what it left
        if time.monotonic() < due:
            continue
        try:
            compact_audited(store, run_id, trigger="periodic")
        except StreambenchError as exc:
            log.warning("run %s: periodic compaction skipped (%s)", run_id, exc)
        due = time.monotonic() + every_s
