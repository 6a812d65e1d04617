"""One run over several processes: split it into shards, run one shard, merge.

A *shard* drives global connections ``[conn_offset, conn_offset + connections)``
of a scenario's ``load.connections`` with the run engine's single-process
path (:func:`streambench.generate.engine.drive.drive`), its own event loop, its
own :class:`CaptureWriter` (``worker=k``: parts numbered from ``k * PART_STRIDE``,
the ``worker`` column filled) under the run id the driver chose. The
schedule splits exactly over connections, so the union of the shards is the
single-process run.

The schedule's zero is common to every shard: each shard opens its
connections, reports ``ready`` and waits; when all are ready the driver
publishes a start time in *epoch* nanoseconds, which each process converts
to its own monotonic clock. On one Linux host the monotonic clocks agree
anyway; across machines only wall clocks can be compared, so a shard on a
machine whose clock is off by *d* starts *d* early or late. Latency is not
affected (a shard measures it against its own clock), only the alignment
of the shards' schedules; keep cluster hosts on NTP.

A shard talks to its driver through a :class:`ShardLink` (a multiprocessing
queue for local workers, Dask's Queue and Variables on a cluster). Messages
are plain dicts: ``ready``, ``progress`` (a :class:`Progress` as a dict, once
per flush) and, from the backends, ``done`` (the shard's result) and
``lost`` (the worker died: the run is ``partial``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pickle
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streambench.capture.merge import leaves
from streambench.capture.redact import Redactor
from streambench.capture.store import Store
from streambench.capture.writer import (
    PART_STRIDE,
    CaptureCounts,
    CaptureWriter,
    Recorder,
    wall_offset_ns,
)
from streambench.errors import StreambenchError
from streambench.generate.engine.drive import drive, injector_for
from streambench.generate.engine.lifecycle import RunControl, interrupted, new_loop_run
from streambench.generate.engine.progress import Progress, ProgressTracker
from streambench.generate.engine.run import redactor_for
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.scale.limits import raise_open_files
from streambench.logs import current_run_id, get_logger
from streambench.scenario.model import Scenario

log = get_logger("streambench.run")


@dataclass(frozen=True)
class ShardSpec:
    """Everything a worker needs to run its share of a run (picklable)."""

    run_id: str
    scenario: Scenario
    store_root: str
    url: str  # the target as started by the driver (embedded target resolved)
    worker: int
    conn_offset: int
    connections: int
    dial: tuple[str, int] | None = None  # the run's fault proxy (clients connect there)

    @property
    def conns(self) -> tuple[int, int]:
        return self.conn_offset, self.conn_offset + self.connections


class ShardLink(Protocol):
    """A shard's line to its driver. ``report`` never blocks the event loop."""

    def report(self, message: dict[str, Any]) -> None: ...

    def wait_start(self) -> int | None:
        """Block until the driver's start time (epoch ns); None if stopped first."""

    def wait_stop(self, timeout: float) -> bool:
        """Block up to ``timeout`` s; True once the driver asks the shard to stop."""


def default_workers() -> int:
    """The cores this process may run on (``os.cpu_count()`` outside a CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split(connections: int, workers: int) -> list[tuple[int, int]]:
    """``(conn_offset, count)`` per shard: contiguous, as even as possible, none empty."""
    n = max(1, min(workers, connections))
    bounds = [k * connections // n for k in range(n + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(n)]


def plan_shards(scenario: Scenario, *, run_id: str, store_root: str, url: str,
                workers: int, dial: tuple[str, int] | None = None) -> list[ShardSpec]:
    return [ShardSpec(run_id=run_id, scenario=scenario, store_root=store_root, url=url,
                      worker=k, conn_offset=offset, connections=count, dial=dial)
            for k, (offset, count) in enumerate(split(scenario.load.connections, workers))]


# -- the shard side -----------------------------------------------------------
@dataclass
class ShardStart:
    """A shard's :class:`~streambench.generate.engine.drive.StartGate`: its connections
    and the zero common to the whole run."""

    spec: ShardSpec
    link: ShardLink
    control: RunControl

    @property
    def conn_offset(self) -> int:
        return self.spec.conn_offset

    @property
    def connections(self) -> int:
        return self.spec.connections

    async def start_mono(self) -> int:
        """Report ``ready``, wait for the driver's epoch start, convert to monotonic."""
        self.link.report({"kind": "ready", "worker": self.spec.worker, **where()})
        epoch_ns = await asyncio.to_thread(self.link.wait_start)
        if epoch_ns is None:  # stopped before the start: send nothing
            self.control.stop("stopped by the driver")
            return time.monotonic_ns()
        return epoch_ns - (time.time_ns() - time.monotonic_ns())


def where() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def run_shard(spec: ShardSpec, link: ShardLink) -> dict[str, Any]:
    """Run one shard to its end on a fresh event loop (uvloop); return its result.

    Never raises for a failed run: the result carries ``status`` and, on
    failure, ``error`` (text) and ``exception`` (picklable), so the driver
    gets the counts of what was captured either way.
    """
    raise_open_files()
    current_run_id.set(spec.run_id)
    result: dict[str, Any] = new_loop_run(run_shard_async(spec, link))
    return result


async def run_shard_async(spec: ShardSpec, link: ShardLink) -> dict[str, Any]:
    scenario = spec.scenario
    control = RunControl()
    finished = threading.Event()
    threading.Thread(target=_watch_stop, args=(link, asyncio.get_running_loop(), control,
                                               finished),
                     name="shard.stop_watch", daemon=True).start()
    store = Store(spec.store_root)
    redactor = redactor_for(scenario)
    writer = CaptureWriter(store, spec.run_id, protocol=scenario.target.protocol,
                           offset_ns=wall_offset_ns(), redactor=redactor,
                           payloads=scenario.capture.payloads, worker=spec.worker,
                           conn_offset=spec.conn_offset)
    recorder = Recorder()
    injector = injector_for(scenario, recorder)
    if injector is not None:
        injector.conn_offset = spec.conn_offset
    status, failure = "completed", None

    def progress(snapshot: Progress) -> None:
        link.report({"kind": "progress", "worker": spec.worker,
                     "progress": dataclasses.asdict(snapshot)})

    try:
        with _sigterm(control):
            await drive(scenario, url=spec.url, recorder=recorder, writer=writer,
                        tracker=ProgressTracker(total_s=scenario.load.total_duration),
                        control=control, on_progress=progress, injector=injector,
                        gate=ShardStart(spec, link, control), dial=spec.dial)
        if control.reason is not None:
            status = "aborted"
    except BaseException as exc:  # reported, not raised: the driver decides
        if not interrupted(exc) and not isinstance(exc, Exception):
            raise
        status = "aborted" if interrupted(exc) else "failed"
        failure = None if interrupted(exc) else exc
    finally:
        finished.set()
        truth = [] if injector is None else _shard_truth(injector, spec, writer.offset_ns)
        # the last batches failing (a full disk) fail the shard
        unwritten = writer.finish(recorder.take(), faults=truth)
        if unwritten is not None and failure is None:
            status, failure = "failed", unwritten
    return _result(spec, status=status, failure=failure, writer=writer, redactor=redactor,
                   reason=control.reason)


def _shard_truth(injector: FaultInjector, spec: ShardSpec, offset_ns: int) -> list[dict[str, Any]]:
    """Client-side ground truth; a run-wide burst row is written by shard 0 only."""
    rows = injector.ground_truth(offset_ns=offset_ns)
    if spec.worker == 0:
        return rows
    return [r for r in rows if not (r["kind"] == "burst" and r["conn"] is None)]


def _result(spec: ShardSpec, *, status: str, failure: BaseException | None,
            writer: CaptureWriter, redactor: Redactor, reason: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "worker": spec.worker, "status": status, "conns": list(spec.conns), **where(),
        **writer.counts(), "redaction": dict(redactor.counts), "reason": reason,
    }
    if failure is not None:
        result["error"] = str(failure)
        result["exception"] = portable(failure)
    return result


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to cross a process), else a StreambenchError."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own bytes, just made)
    except Exception:
        return StreambenchError(str(exc))
    return exc


def _watch_stop(link: ShardLink, loop: asyncio.AbstractEventLoop, control: RunControl,
                finished: threading.Event) -> None:
    """Turn the driver's stop request into ``control.stop`` on the shard's loop."""
    while not finished.is_set():
        if link.wait_stop(0.25):
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(control.stop, "stopped by the driver")
            return


@contextlib.contextmanager
def _sigterm(control: RunControl) -> Any:
    """SIGTERM stops the shard cleanly (main thread only; Dask runs tasks in threads).

    SIGINT is left to the driver: a Ctrl-C on a terminal reaches every
    process of the group, and the driver stops the shards through their link.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, control.stop, "SIGTERM")
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


# -- merging ------------------------------------------------------------------
def merge_progress(snapshots: Mapping[int, Mapping[str, Any]], *, total_s: float,
                   final: bool = False) -> Progress:
    """One line for the whole run from each shard's latest snapshot.

    Counts and rates add up; the p95 shown is the worst shard's (an upper
    bound over the last interval), as is the lag.
    """
    values = list(snapshots.values())

    def worst(key: str) -> float | None:
        found = [v[key] for v in values if v.get(key) is not None]
        return max(found) if found else None

    return Progress(
        elapsed_s=max((v["elapsed_s"] for v in values), default=0.0), total_s=total_s,
        sent=sum(v["sent"] for v in values), received=sum(v["received"] for v in values),
        errors=sum(v["errors"] for v in values), timeouts=sum(v["timeouts"] for v in values),
        rate=sum(v["rate"] for v in values), p95_ms=worst("p95_ms"), lag_ms=worst("lag_ms"),
        final=final, pushes=sum(v.get("pushes", 0) for v in values),
    )


def merge_counts(results: Sequence[Mapping[str, Any]]) -> tuple[CaptureCounts, dict[str, int]]:
    """The manifest's ``counts`` and ``redaction`` summed over shard results."""
    def total(key: str) -> int:
        return sum(int(r.get(key) or 0) for r in results)

    counts = CaptureCounts(events=total("events"), event_bytes=total("event_bytes"),
                           parts=total("parts"), faults=total("faults"))
    redaction: dict[str, int] = {}
    for r in results:
        for rule, n in (r.get("redaction") or {}).items():
            redaction[rule] = redaction.get(rule, 0) + n
    return counts, redaction


def on_disk(store: Store, run_id: str, worker: int) -> dict[str, int]:
    """What a worker that died left in the store.

    Its original part numbers say whose rows they are; compaction may have
    merged them since, so they are read from the files' lineage, not names.
    """
    found = {"events": 0, "event_bytes": 0, "parts": 0}
    sizes: dict[str, int] = {}
    for leaf in leaves(store, "events", run_id):
        number = leaf.name.removeprefix("part-").removesuffix(".parquet")
        if number.isdigit() and int(number) // PART_STRIDE == worker:
            if leaf.file not in sizes:
                sizes[leaf.file] = int(store.fs.size(leaf.file))
            found["events"] += leaf.rows
            found["event_bytes"] += round(sizes[leaf.file] * leaf.share)
            found["parts"] += 1
    return found
