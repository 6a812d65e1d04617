"""One run over several processes, and the driver every backend shares.

``streambench run --workers N`` (default: every core) splits the run into
shards (:mod:`streambench.generate.scale.shards`) and runs each in a process of
its own with its own event loop. The driver process:

1. writes the manifest (``running``) and starts the embedded target once;
2. launches the shards through a :class:`Backend` (local processes here,
   Dask in :mod:`streambench.generate.scale.cluster`) and waits until every shard
   has opened its connections;
3. publishes one start time (epoch ns), relays the shards' progress as one
   line for the whole run, and forwards a stop (Ctrl-C, SIGTERM) to them;
4. when every shard is done or lost, compacts the run's parts (a long run
   also every ``capture.compact_every``, from a separate process) and
   finishes ONE manifest (counts summed, ``workers`` listed).

A shard whose process dies is reported by name and the run is marked
``partial``: its parts on disk stay readable and are counted, but what it
held in memory is gone, so the run is short of what it should have been.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing import connection as mp_connection
from typing import Any, Protocol

from streambench.capture.compaction import compact_ended_run, compacting
from streambench.capture.manifest import Manifest, finish_manifest, start_manifest
from streambench.capture.status import RunStatus
from streambench.capture.store import Store
from streambench.capture.writer import CaptureWriter, wall_offset_ns
from streambench.generate.engine.drive import OnProgress, health_writer, start_headroom_ns
from streambench.generate.engine.health import Watched, sampling
from streambench.generate.engine.lifecycle import (
    RunControl,
    interrupted,
    new_loop_run,
    stop_on_signals,
    target_url,
)
from streambench.generate.engine.progress import Progress
from streambench.generate.engine.run import (
    RunOutcome,
    new_run_id,
    raise_if_signalled,
    redactor_for,
)
from streambench.generate.faults.network.child import proxied
from streambench.generate.scale.limits import raise_open_files
from streambench.generate.scale.shards import (
    ShardSpec,
    merge_counts,
    merge_progress,
    on_disk,
    plan_shards,
    portable,
    run_shard,
    split,
)
from streambench.logs import current_run_id, get_logger
from streambench.scenario.model import Scenario
from streambench.scenario.secrets import public_url

log = get_logger("streambench.run")


class Backend(Protocol):
    """Where shards run. Messages out of :meth:`poll` are the shards' own
    (``ready``, ``progress``) plus ``done`` (with the shard's result) and ``lost``."""

    start_margin_s: float  # how far ahead the start time is set (reaching every shard)
    shared_cores: int | None  # the cores every shard shares (local processes), or None

    def launch(self, specs: list[ShardSpec]) -> None: ...
    def poll(self, timeout: float) -> list[dict[str, Any]]: ...
    def start(self, epoch_ns: int) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def describe(self) -> dict[str, Any]: ...


def run_workers(scenario: Scenario, *, store: Store, workers: int, run_id: str | None = None,
                on_progress: OnProgress = None, control: RunControl | None = None,
                handle_signals: bool = True) -> RunOutcome:
    """Run over ``workers`` local processes; blocking, like :func:`engine.run.run`."""
    return run_sharded(scenario, store=store, backend=ProcessBackend(), workers=workers,
                       run_id=run_id, on_progress=on_progress, control=control,
                       handle_signals=handle_signals)


def run_sharded(scenario: Scenario, *, store: Store, backend: Backend, workers: int,
                run_id: str | None = None, on_progress: OnProgress = None,
                control: RunControl | None = None, handle_signals: bool = True) -> RunOutcome:
    """:func:`drive` on a fresh loop; a signal ends in :class:`RunInterrupted`."""
    outcome = new_loop_run(drive(
        scenario, store=store, backend=backend, workers=workers, run_id=run_id,
        on_progress=on_progress, control=control, handle_signals=handle_signals))
    raise_if_signalled(outcome)
    return outcome


class _Shard:
    """The driver's view of one shard."""

    def __init__(self, spec: ShardSpec) -> None:
        self.spec = spec
        self.ready = False
        self.where: dict[str, Any] = {}
        self.progress: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.lost: str | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None or self.lost is not None

    def take(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "ready":
            self.ready = True
            self.where = {k: message[k] for k in ("host", "pid", "address") if k in message}
        elif kind == "progress":
            self.progress = message["progress"]
        elif kind == "done":
            self.result = message["result"]
            self.lost = None
        elif kind == "lost" and self.result is None:
            self.lost = message["reason"]
            log.warning("%s", self.lost)


async def drive(scenario: Scenario, *, store: Store, backend: Backend, workers: int,
                run_id: str | None = None, on_progress: OnProgress = None,
                control: RunControl | None = None, handle_signals: bool = False) -> RunOutcome:
    """Run ``scenario`` as shards on ``backend``; one run id, one manifest, one summary."""
    control = control or RunControl()
    control.bind()
    run_id = run_id or new_run_id(scenario.name)
    raise_open_files()  # before the target starts: it inherits the limit
    current_run_id.set(run_id)
    redactor_for(scenario)  # fails fast (a missing hash key)
    manifest = start_manifest(scenario, run_id=run_id, store=store)
    store.claim_run(manifest)  # RunIdTaken if the id was ever used in this store
    count = len(split(scenario.load.connections, workers))
    truth = CaptureWriter(store, run_id, protocol=scenario.target.protocol,
                          offset_ns=wall_offset_ns(), worker=count)  # the target's faults
    shards: list[_Shard] = []
    status: RunStatus = "completed"
    error = None
    failure: BaseException | None = None
    log.info("run started: %s against %s on %d workers", scenario.name,
             public_url(scenario.target.url), count, extra={"run_id": run_id})
    try:
        with stop_on_signals(control, enabled=handle_signals), compacting(
                store, run_id, every_s=scenario.capture.compact_every,
                planned_s=scenario.load.total_duration):
            async with target_url(scenario, truth) as (url, target_pid), \
                    proxied(scenario, url, truth) as via:
                shards = [_Shard(s) for s in plan_shards(
                    scenario, run_id=run_id, store_root=_shared_root(store), url=url,
                    workers=workers, dial=via.dial)]
                # the shards sample themselves; the driver samples the built-in target
                targets = [Watched("target", None, target_pid)] if target_pid else []
                with sampling(health_writer(truth), targets):
                    await _supervise(backend, shards, control, on_progress, scenario,
                                     announce=lambda: store.write_manifest(
                                         {**manifest, "workers": _listing(shards)}),
                                     on_start=via.start)
        shard_failure = next((s.result["exception"] for s in shards
                              if s.result and s.result.get("exception") is not None), None)
        if shard_failure is not None:
            raise shard_failure
        status = _status(shards, control)
    except BaseException as exc:  # recorded in the manifest, raised below
        failure = exc
        status, error = ("aborted", None) if interrupted(exc) else ("failed", str(exc))
    backend.close()
    unwritten = truth.finish([])
    if unwritten is not None and failure is None:
        failure, status, error = unwritten, "failed", str(unwritten)
    compact_ended_run(store, run_id, status=status, reason=control.reason)
    manifest = _finish(manifest, store=store, shards=shards, status=status, error=error,
                       reason=control.reason, truth=truth, backend=backend)
    store.write_manifest(manifest)
    log.info("run %s: %d events in %d parts", status, manifest["counts"]["events"],
             manifest["counts"]["parts"], extra={"run_id": run_id, "status": status})
    if failure is not None:
        raise failure
    return RunOutcome(run_id=run_id, status=status, manifest=manifest)


def _busiest_core(shards: list[_Shard], shared_cores: int | None) -> int:
    """How many connections' senders one core starts: the largest shard's, or, where more
    shards than cores share the machine, their share of every connection."""
    largest = max(s.spec.connections for s in shards)
    if shared_cores is None or len(shards) <= shared_cores:
        return largest
    return max(largest, -(-sum(s.spec.connections for s in shards) // shared_cores))


async def _supervise(backend: Backend, shards: list[_Shard], control: RunControl,
                     on_progress: OnProgress, scenario: Scenario, *,
                     announce: Callable[[], None],
                     on_start: Callable[[int], None] = lambda zero_mono_ns: None) -> None:
    """Launch, start together, relay progress, forward a stop; until all are done or lost.

    ``announce`` is called once every shard is ready (or finished), before the start;
    ``on_start`` gets the start as monotonic ns of this host (the fault proxy's zero).
    """
    backend.launch([s.spec for s in shards])
    every = scenario.capture.flush_every
    total_s = scenario.load.total_duration
    started = stopping = False
    next_line = time.monotonic() + every
    while not all(s.finished for s in shards):
        for message in await asyncio.to_thread(backend.poll, 0.1):
            shards[message["worker"]].take(message)
        failed = any(s.result and s.result.get("exception") is not None for s in shards)
        if (control.stop_event.is_set() or failed) and not stopping:
            backend.stop()
            stopping = True
        if not started and all(s.ready or s.finished for s in shards):
            started = True
            announce()
            if not stopping:
                zero_ns = (time.time_ns() + int(backend.start_margin_s * 1e9)
                           + start_headroom_ns(_busiest_core(shards, backend.shared_cores)))
                backend.start(zero_ns)
                on_start(zero_ns - time.time_ns() + time.monotonic_ns())  # the fault proxy
        if on_progress is not None and started and time.monotonic() >= next_line:
            next_line = time.monotonic() + every
            on_progress(_line(shards, total_s))
    if on_progress is not None and started:
        on_progress(_line(shards, total_s, final=True))


def _shared_root(store: Store) -> str:
    """The store root as every worker can open it (a local path made absolute)."""
    return os.path.abspath(store.root) if store.local else store.root


def _line(shards: list[_Shard], total_s: float, *, final: bool = False) -> Progress:
    return merge_progress({s.spec.worker: s.progress for s in shards if s.progress},
                          total_s=total_s, final=final)


def _status(shards: list[_Shard], control: RunControl) -> RunStatus:
    if any(s.lost for s in shards):
        return "partial"
    if control.reason is not None or any(s.result and s.result["status"] == "aborted"
                                         for s in shards):
        return "aborted"
    return "completed"


def _finish(manifest: Manifest, *, store: Store, shards: list[_Shard], status: RunStatus,
            error: str | None, reason: str | None, truth: CaptureWriter,
            backend: Backend) -> Manifest:
    """The manifest with every shard's counts summed and every worker listed."""
    rows = _listing(shards, store=store, run_id=manifest["run_id"])
    counts, redaction = merge_counts(rows)
    counts["faults"] += truth.faults.rows_written
    finished = finish_manifest(manifest, status=status, error=error, counts=counts,
                               redaction=redaction, reason=reason)
    finished["execution"] = backend.describe()
    finished["workers"] = rows
    lost = [s.lost for s in shards if s.lost]
    if lost:
        finished["lost_workers"] = lost
    return finished


def _listing(shards: list[_Shard], *, store: Store | None = None, run_id: str = ""
             ) -> list[dict[str, Any]]:
    """The manifest's ``workers``: each shard's result, or where it runs / what it left."""
    rows = []
    for s in shards:
        row = {"worker": s.spec.worker, "conns": list(s.spec.conns), **s.where,
               "status": "lost" if s.lost else "running" if s.result is None else "done"}
        if s.result is not None:
            row = {k: v for k, v in s.result.items() if k != "exception"}
        elif store is not None:  # the end of the run: count what it left on disk
            row.update(on_disk(store, run_id, s.spec.worker))
        if s.lost:
            row["reason"] = s.lost
        rows.append(row)
    return rows


# -- local processes ------------------------------------------------------------
class ProcessLink:
    """A shard's link in a local worker process: one pipe of its own to the driver.

    One pipe per shard (not a shared queue or Event): a worker killed in the
    middle of a write cannot leave a lock held that blocks the others, and its
    death shows as end-of-file at the driver. The driver's commands
    (``("start", epoch_ns)``, ``("stop",)``) are read by a thread; end-of-file
    (the driver is gone) counts as a stop.
    """

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self._send_lock = threading.Lock()
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._start_ns = 0
        self._reader: threading.Thread | None = None

    def listen(self) -> None:
        """Start reading the driver's commands (call once, in the worker process)."""
        self._reader = threading.Thread(target=self._read, name="shard.commands", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                command = self.pipe.recv()
                if command[0] == "start":
                    self._start_ns = int(command[1])
                    self._started.set()
                elif command[0] == "stop":
                    self._stopped.set()
        except (EOFError, OSError, TypeError):
            # TypeError: the worker closed the pipe as it finished while this thread was
            # between recv()'s check and its read (Connection.close() sets the handle to
            # None); either way no command can come any more
            self._stopped.set()

    def report(self, message: dict[str, Any]) -> None:
        with self._send_lock, contextlib.suppress(OSError):  # a gone driver is a stop
            self.pipe.send(message)

    def wait_start(self) -> int | None:
        while not self._started.wait(0.1):
            if self._stopped.is_set():
                return None
        return self._start_ns

    def wait_stop(self, timeout: float) -> bool:
        return self._stopped.wait(timeout)


def shard_process(spec: ShardSpec, pipe: Any, logs: tuple[str, str] | None) -> None:
    """A worker process: run one shard, send its result, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver forwards Ctrl-C as a stop
    if logs is not None:
        from streambench.logs import configure

        configure(fmt=logs[0], level=logs[1])
    link = ProcessLink(pipe)
    link.listen()
    try:
        result = run_shard(spec, link)
    except Exception as exc:  # a shard that cannot even start
        result = {"worker": spec.worker, "status": "failed", "conns": list(spec.conns),
                  "error": str(exc), "exception": portable(exc)}
    link.report({"kind": "done", "worker": spec.worker, "result": result})
    pipe.close()


def _log_settings() -> tuple[str, str] | None:
    """The driver's ``--log-format``/``--log-level``, for the workers to use too."""
    from streambench.logs import JsonFormatter

    logger = get_logger("streambench")
    if not logger.handlers:
        return None
    fmt = "json" if isinstance(logger.handlers[0].formatter, JsonFormatter) else "text"
    return fmt, logging.getLevelName(logger.level).lower()


class ProcessBackend:
    """Shards as local processes (spawned: a fresh interpreter, no inherited loop)."""

    start_margin_s = 0.05
    shared_cores: int | None = os.cpu_count() or 1
    STOP_GRACE_S = 30.0  # a stopped shard flushes what it holds; then it is ended by pid

    def __init__(self) -> None:
        self._mp = multiprocessing.get_context("spawn")
        self.processes: dict[int, Any] = {}
        self._pipes: dict[int, mp_connection.Connection] = {}  # worker -> the driver's end

    def launch(self, specs: list[ShardSpec]) -> None:
        for spec in specs:
            ours, theirs = self._mp.Pipe(duplex=True)
            process = self._mp.Process(target=shard_process,
                                       args=(spec, theirs, _log_settings()),
                                       name=f"streambench-worker-{spec.worker}", daemon=True)
            process.start()
            theirs.close()  # only the worker holds its end: its death is our end-of-file
            self.processes[spec.worker] = process
            self._pipes[spec.worker] = ours

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        by_pipe = {id(p): (w, p) for w, p in self._pipes.items()}
        for ready in mp_connection.wait(list(self._pipes.values()), timeout):
            worker, pipe = by_pipe[id(ready)]
            try:
                while pipe.poll():
                    messages.append(pipe.recv())
            except (EOFError, OSError, TypeError):
                messages += self._ended(worker, done=any(
                    m["kind"] == "done" and m["worker"] == worker for m in messages))
        return messages

    def _ended(self, worker: int, *, done: bool) -> list[dict[str, Any]]:
        """The worker's pipe closed: fine after its result, else it died."""
        self._pipes.pop(worker).close()
        if done:
            return []
        process = self.processes[worker]
        process.join(5)
        reason = _exit_reason(process.exitcode)
        return [{"kind": "lost", "worker": worker,
                 "reason": f"worker {worker} (pid {process.pid}) died: {reason}"}]

    def _command(self, command: tuple[Any, ...]) -> None:
        for pipe in self._pipes.values():
            with contextlib.suppress(OSError):  # a dead worker is found by poll()
                pipe.send(command)

    def start(self, epoch_ns: int) -> None:
        self._command(("start", epoch_ns))

    def stop(self) -> None:
        self._command(("stop",))

    def close(self) -> None:
        """Stop every shard, give it time to flush, then end it by pid."""
        self.stop()
        deadline = time.monotonic() + self.STOP_GRACE_S
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
                process.join(5)
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()

    def describe(self) -> dict[str, Any]:
        return {"mode": "workers", "workers": len(self.processes)}


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "closed its pipe but is still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code} before reporting"
