"""Driving one process's connections: open, fix the zero, send, receive, flush, sweep.

:func:`drive` is the heart of a run, shared by the single-process engine
(:mod:`.run`) and by each shard of a run over many processes. One
``asyncio.TaskGroup``; every task is named after what it does:

* ``connections``: a task group of its own holding ``<client>.receive`` and
  ``<client>.send`` per connection (the clients of
  :mod:`streambench.generate.protocols`);
* ``capture.flush``: hands the captured rows to the writer thread every
  ``capture.flush_every`` (or ``flush_rows``) and reports progress;
* ``timeouts.sweep``: turns overdue messages into timeouts;
* ``run.stop_watch``: cancels the clients when the run is stopped;
* ``health.tick``: the event-loop stall probe of the health rows;
* ``faults.disconnect``: scheduled disconnect faults, when the scenario has some;
* ``connections.heartbeat``: pings every connection once per ``load.heartbeat``
  (:mod:`.heartbeat`), for clients whose protocol pings (WebSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from streambench.capture.health import HealthWriter
from streambench.capture.schema import Kind
from streambench.capture.writer import PART_STRIDE, CaptureWriter, Recorder
from streambench.errors import ConfigError
from streambench.generate.engine.context import RunContext
from streambench.generate.engine.conversation import compile_plan
from streambench.generate.engine.fanout import Ledger
from streambench.generate.engine.health import LoopStalls, Watched, sampling
from streambench.generate.engine.heartbeat import Pinging, heartbeat_loop
from streambench.generate.engine.lifecycle import RunControl, first_error
from streambench.generate.engine.progress import Progress, ProgressTracker
from streambench.generate.engine.schedule import schedule
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.faults.plan import FaultPlan
from streambench.generate.protocols.base import Connection, host_port, open_clients
from streambench.generate.scale.limits import (
    CLIENT_BYTES_PER_CONNECTION,
    TARGET_BYTES_PER_CONNECTION,
    check_local_ports,
    check_memory,
    check_open_files,
    resolve_source_addresses,
)
from streambench.scenario.model import Scenario, header_problem
from streambench.scenario.secrets import resolve

OnProgress = Callable[[Progress], None] | None
T = TypeVar("T")
CONNECT_CONCURRENCY = 256  # handshakes in flight at once when opening many connections
FIRST_FLUSH_S = 0.25  # the first flush after the schedule's zero (then every flush_every)


class StartGate(Protocol):
    """A shard's share of the run and its common zero (see ``scale.shards.ShardStart``)."""

    @property
    def conn_offset(self) -> int: ...

    @property
    def connections(self) -> int: ...

    async def start_mono(self) -> int:
        """Wait for the zero common to every shard; monotonic ns in this process."""


def start_headroom_ns(connections: int) -> int:
    """How far ahead of now the schedule's zero is set once the connections are open.

    Every sender must be running before its first message is due, and
    creating and first running the tasks of a connection takes 110-200 us
    (measured with 10,000 connections: the last sender started 1.1 s after
    the zero was set). With a fixed 5 ms the first second or two of such a
    run would be late: lag at the start, not the target's fault.
    """
    return 5_000_000 + 200_000 * connections


def injector_for(scenario: Scenario, recorder: Recorder) -> FaultInjector | None:
    """The run's fault injector, or None when the scenario has no ``faults:``."""
    if not scenario.faults:
        return None
    plan = FaultPlan(scenario.faults, seed=scenario.seed, connections=scenario.load.connections,
                     duration_s=scenario.load.total_duration,
                     cid_field=scenario.message.cid_field, seq_field=scenario.message.seq_field)
    return FaultInjector(plan, record=recorder.append)


def run_context(scenario: Scenario, *, url: str, recorder: Recorder, control: RunControl,
                injector: FaultInjector | None, gate: StartGate | None,
                dial: tuple[str, int] | None = None) -> RunContext:
    """What every client of this process is handed (secrets resolved here, never logged)."""
    load = scenario.load
    offset = 0 if gate is None else gate.conn_offset
    headers = {k: resolve(v, field=f"target.headers.{k}") for k, v in
               getattr(scenario.target, "headers", {}).items()}
    for name, value in headers.items():  # a resolved ${SECRET} is checked like a literal
        problem = header_problem(name, value)
        if problem is not None:
            raise ConfigError(f"target.headers.{name}: {problem} (after resolving ${{...}})")
    plan = compile_plan(scenario)
    senders = load.connections
    if scenario.fanout is not None and scenario.fanout.senders is not None:
        senders = scenario.fanout.senders  # the rate is theirs; the others only receive

    def arrivals(conn: int) -> Any:
        if offset + conn >= senders:
            return iter(())
        base = schedule(load, seed=scenario.seed, conn=offset + conn, connections=senders)
        if injector is None:
            return base
        return injector.plan.schedule(base, conn=offset + conn)  # bursts add arrivals

    connections = load.connections if gate is None else gate.connections
    return RunContext(
        scenario=scenario, record=recorder.append, start_mono=0, frame=plan.frame, plan=plan,
        url=resolve(url, field="target.url"), headers=headers, stop=control.stop_event,
        schedule=arrivals, conn_offset=offset, connections=connections, dial=dial,
        fanout=ledger_for(scenario, recorder, connections=connections),
        source_addresses=resolve_source_addresses(
            getattr(scenario.target, "source_addresses", ())),
    )


def check_fits(ctx: RunContext) -> None:
    """ResourceLimit, before anything opens, if this process's connections cannot fit here."""
    if ctx.scenario.target.protocol == "websocket":  # the client with target.source_addresses
        check_local_ports(ctx.connections, ctx.source_addresses, host_port(ctx.url))
    check_open_files(ctx.connections)
    per_connection = CLIENT_BYTES_PER_CONNECTION
    if ctx.scenario.target.embedded:
        per_connection += TARGET_BYTES_PER_CONNECTION
    check_memory(ctx.connections, per_connection=per_connection)


def ledger_for(scenario: Scenario, recorder: Recorder, *, connections: int) -> Ledger | None:
    """The process's fan-out ledger, or None when no message kind fans out."""
    if not scenario.fans_out:
        return None
    return Ledger(recorder.append, timeout_ns=int(scenario.load.timeout * 1e9),
                  self_copy=scenario.fanout is not None and scenario.fanout.self_,
                  senders=connections, topic_filters=scenario.target.protocol == "mqtt")


async def drive(scenario: Scenario, *, url: str, recorder: Recorder, writer: CaptureWriter,
                tracker: ProgressTracker, control: RunControl, on_progress: OnProgress,
                injector: FaultInjector | None = None, gate: StartGate | None = None,
                target_pid: int | None = None, dial: tuple[str, int] | None = None,
                on_start: Callable[[int], None] | None = None) -> None:
    """Open the connections, fix the schedule's zero, send and receive until done.

    ``gate`` makes this process drive global connections ``[conn_offset,
    conn_offset + connections)`` of the scenario's ``load.connections`` and
    take the schedule's zero from the driver; without it this process drives
    them all. Meanwhile this process (and the built-in target, ``target_pid``)
    is sampled once a second into the run's health rows
    (:mod:`streambench.generate.engine.health`). ``dial`` is where clients
    connect when the run goes through the fault proxy; ``on_start`` is told the
    schedule's zero (monotonic ns).
    """
    stalls = LoopStalls()
    client = Watched("client", writer.worker, os.getpid(), stalls=stalls,
                     parts=lambda: writer.events.parts_written,
                     connections=lambda: tracker.counts[Kind.CONNECT] - tracker.counts[
                         Kind.DISCONNECT])  # fmt: skip
    watched = [client] + ([Watched("target", None, target_pid)] if target_pid else [])
    with sampling(health_writer(writer), watched):
        try:
            await _drive(scenario, url=url, recorder=recorder, writer=writer, tracker=tracker,
                         control=control, on_progress=on_progress, injector=injector, gate=gate,
                         stalls=stalls, dial=dial, on_start=on_start)
        except BaseExceptionGroup as group:  # capture failing (a full disk): one clear error
            raise first_error(group) from None


def health_writer(writer: CaptureWriter) -> HealthWriter:
    """Health rows beside ``writer``'s events, numbered like its parts (per worker)."""
    return HealthWriter(writer.events.store, writer.run_id,
                        first_part=writer.worker * PART_STRIDE)


async def _drive(scenario: Scenario, *, url: str, recorder: Recorder, writer: CaptureWriter,
                 tracker: ProgressTracker, control: RunControl, on_progress: OnProgress,
                 injector: FaultInjector | None, gate: StartGate | None,
                 stalls: LoopStalls, dial: tuple[str, int] | None,
                 on_start: Callable[[int], None] | None) -> None:
    ctx = run_context(scenario, url=url, recorder=recorder, control=control,
                      injector=injector, gate=gate, dial=dial)
    check_fits(ctx)
    await asyncio.to_thread(warm_up, writer, ctx)
    opened = await until_stopped(open_clients(ctx, open_all=open_all, writer=writer), control)
    if opened is None:  # stopped while connecting: nothing was sent, the run is aborted
        return
    conns, first = opened
    for c in conns:
        c.faults = injector
    await fix_zero(ctx, conns, gate=gate, tracker=tracker, injector=injector, on_start=on_start)
    with old_objects_left_out_of_gc():
        async with asyncio.TaskGroup() as tg:
            clients = tg.create_task(serve_all(conns, first), name="connections")
            background = [
                tg.create_task(flush_loop(recorder, writer, tracker, scenario, on_progress),
                               name="capture.flush"),
                tg.create_task(sweep_loop(ctx, conns), name="timeouts.sweep"),
                tg.create_task(stop_watch(control, [clients]), name="run.stop_watch"),
                tg.create_task(stalls.tick(), name="health.tick"),
            ]
            if injector is not None:
                background.append(tg.create_task(injector.disconnect_loop(conns),
                                                 name="faults.disconnect"))
            pinging = [c for c in conns if isinstance(c, Pinging)]
            if scenario.load.heartbeat and pinging:
                background.append(tg.create_task(heartbeat_loop(pinging, scenario.load.heartbeat),
                                                 name="connections.heartbeat"))
            await asyncio.wait([clients])
            for task in background:
                task.cancel()
            error = None if clients.cancelled() else clients.exception()
            if error is not None:
                raise error
    now = time.monotonic_ns()
    for c in conns:  # a stopped run still accounts for what it sent
        c.inflight.expire(now + 2 * ctx.timeout_ns, ctx.timeout_ns, c.topic)
    if ctx.fanout is not None:
        ctx.fanout.expire(now + 2 * ctx.timeout_ns, lambda conn: conns[conn].topic)
    await asyncio.to_thread(writer.wait)  # every batch counted before the final line
    if on_progress is not None:
        on_progress(tracker.update(recorder.rows, final=True))


@contextlib.contextmanager
def old_objects_left_out_of_gc() -> Iterator[None]:
    """Leave every object alive at the schedule's start out of garbage collection
    until the schedule ends (:func:`gc.freeze`).

    Python's full collection walks every object the process holds: with polars,
    pyarrow and grpcio loaded that took about 60 ms, on whichever thread
    allocated, the event loop too: a stall of the senders, counted as latency
    (one came in a 45,000-message gRPC run at 10,000 messages/s). Frozen, those
    objects are skipped; one that became garbage meanwhile is collected after
    the schedule (unfreezing puts them back). Left alone when something else
    froze objects.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def fix_zero(ctx: RunContext, conns: list[Connection], *, gate: StartGate | None,
                   tracker: ProgressTracker, injector: FaultInjector | None,
                   on_start: Callable[[int], None] | None) -> None:
    """Set the schedule's zero and tell what counts from it: progress, the client faults,
    the fault proxy (``on_start``)."""
    if gate is None:
        ctx.start_mono = time.monotonic_ns() + start_headroom_ns(len(conns))
    else:  # the zero common to every shard of the run
        ctx.start_mono = await gate.start_mono()
    tracker.start(ctx.start_mono)
    if on_start is not None:
        on_start(ctx.start_mono)
    if injector is not None:
        injector.start_mono = ctx.start_mono
        injector.record_bursts(conns)


async def until_stopped(work: Coroutine[Any, Any, T], control: RunControl) -> T | None:
    """``work``'s result, or None once the run is asked to stop first (``work`` is
    cancelled): a signal must end a run whose connections hang in their handshakes."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(control.stop_event.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


async def serve_all(conns: list[Connection], first: list[Any]) -> None:
    """Run every connection's ``run`` and ``send_all`` to the end; the first error alone.

    A task group of their own, so that a finished task is let go at once, and
    a cancel of this task (a stop) cancels them all. A connection that
    receives in callbacks takes its handle up with ``adopt(handle)`` instead
    of ``run``: no task at all for that side (a task is most of an idle
    connection's memory).
    """
    try:
        async with asyncio.TaskGroup() as group:
            for c, handle in zip(conns, first, strict=True):
                adopt = getattr(c, "adopt", None)
                if adopt is not None:
                    adopt(handle)
                else:
                    group.create_task(c.run(handle), name=f"{c.name}.receive")
                group.create_task(c.send_all(), name=f"{c.name}.send")
    except BaseExceptionGroup as errors:
        raise first_error(errors) from None


async def open_all(conns: list[Connection]) -> list[Any]:
    """Open every connection, CONNECT_CONCURRENCY handshakes at a time.

    As many opener tasks as handshakes in flight, each taking the next
    connection, rather than a task per connection: 100,000 waiting tasks
    would cost more memory than the connections they open. The first failure
    cancels the rest and is raised alone (one clear error, not a group of
    identical ones).
    """
    handles: list[Any] = [None] * len(conns)
    todo = iter(enumerate(conns))

    async def opener() -> None:
        for index, c in todo:  # shared: each connection is taken by one opener
            handles[index] = await c.open()

    try:
        async with asyncio.TaskGroup() as tg:
            for k in range(min(CONNECT_CONCURRENCY, len(conns))):
                tg.create_task(opener(), name=f"connections.open[{k}]")
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return handles


async def flush_loop(recorder: Recorder, writer: CaptureWriter, tracker: ProgressTracker,
                     scenario: Scenario, on_progress: OnProgress) -> None:
    """Hand the captured rows to the writer thread every ``flush_every`` (or ``flush_rows``).

    The first flush comes ``FIRST_FLUSH_S`` after the schedule's zero, so a
    watcher (the live dashboard) has numbers within a second of the first send.
    """
    every = scenario.capture.flush_every
    limit = scenario.capture.flush_rows
    deadline = tracker.start_mono / 1e9 + min(every, FIRST_FLUSH_S)  # same clock as monotonic()
    while True:
        # Polling the row count: the hot path must not pay for an Event per append.
        while time.monotonic() < deadline and len(recorder.rows) < limit:  # noqa: ASYNC110
            await asyncio.sleep(min(0.1, every))
        # Counting and measuring the batch happens on the writer thread, vectorised,
        # once it is a table: nothing here is O(rows) on the loop but the copy.
        writer.submit(recorder.take(), on_table=progress_reporter(tracker, on_progress))
        deadline = time.monotonic() + every


def warm_up(writer: CaptureWriter, ctx: RunContext) -> None:
    """Write-path first use (imports, set-up) before the schedule starts, not in it.

    Best effort: a sample the real run would never produce must not fail it.
    """
    now = time.monotonic_ns()
    with contextlib.suppress(Exception):
        sample = ctx.frame(1, "0-1", 1)  # a message as the run will send it
        text = sample.decode(errors="replace")
        rows = [(Kind.SEND, now, 0, 1, "0-1", now, now, len(sample), "/", None, None, sample),
                (Kind.RECV, now, 0, 1, "0-1", now, now, len(sample), "/", None, None, text)]
        writer.warm_up(rows, then=ProgressTracker(total_s=0.0).update_table)


def progress_reporter(tracker: ProgressTracker, on_progress: OnProgress
                      ) -> Callable[[Any], None]:
    """What the writer thread calls with each converted batch."""
    def report(table: Any) -> None:
        snapshot = tracker.update_table(table)
        if on_progress is not None:
            on_progress(snapshot)

    return report


async def sweep_loop(ctx: RunContext, conns: list[Connection]) -> None:
    """Record a timeout for every message whose reply is overdue."""
    timeout_ns = ctx.timeout_ns
    interval = min(0.05, ctx.scenario.load.timeout / 10)
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic_ns()
        for c in conns:
            if c.inflight.pending:
                c.inflight.expire(now, timeout_ns, c.topic)
        if ctx.fanout is not None and ctx.fanout.pending:
            ctx.fanout.expire(now, lambda conn: conns[conn].topic)


async def stop_watch(control: RunControl, tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the clients' tasks when the run is asked to stop."""
    await control.stop_event.wait()
    for task in tasks:
        task.cancel()
