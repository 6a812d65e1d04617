"""Driving one process's connections: open, fix the zero, send, receive, flush, sweep.

:func:`drive` is the heart of a run, shared by the single-process engine
(:mod:`.run`) and by each shard of a run over many processes. One
``asyncio.TaskGroup``; every task is named after what it does:

* ``<client>.receive`` and ``<client>.send`` per connection (the clients of
  :mod:`streambench.generate.protocols`);
* ``capture.flush``: hands the captured rows to the writer thread every
  ``capture.flush_every`` (or ``flush_rows``) and reports progress;
* ``timeouts.sweep``: turns overdue messages into timeouts;
* ``run.stop_watch``: cancels the clients when the run is stopped;
* ``faults.disconnect``: scheduled disconnect faults, when the scenario has some.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from streambench.capture.writer import CaptureWriter, Recorder
from streambench.generate.engine.context import RunContext
from streambench.generate.engine.lifecycle import RunControl, first_error
from streambench.generate.engine.progress import Progress, ProgressTracker
from streambench.generate.engine.schedule import schedule
from streambench.generate.faults.inject import FaultInjector
from streambench.generate.faults.plan import FaultPlan
from streambench.generate.protocols.base import Connection, open_clients
from streambench.scenario.model import Scenario
from streambench.scenario.secrets import resolve
from streambench.scenario.synth import compile_body

OnProgress = Callable[[Progress], None] | None
CONNECT_CONCURRENCY = 256  # handshakes in flight at once when opening many connections


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
    pool = compile_body(scenario.message.body, seed=scenario.seed, pool=scenario.message.pool,
                        cid_field=scenario.message.cid_field,
                        seq_field=scenario.message.seq_field)

    def arrivals(conn: int) -> Any:
        base = schedule(load, seed=scenario.seed, conn=offset + conn,
                        connections=load.connections)
        if injector is None:
            return base
        return injector.plan.schedule(base, conn=offset + conn)  # bursts add arrivals

    return RunContext(
        scenario=scenario, record=recorder.append, start_mono=0, frame=pool.frame,
        url=resolve(url, field="target.url"), headers=headers, stop=control.stop_event,
        schedule=arrivals, conn_offset=offset,
        connections=load.connections if gate is None else gate.connections, dial=dial,
    )


async def drive(scenario: Scenario, *, url: str, recorder: Recorder, writer: CaptureWriter,
                tracker: ProgressTracker, control: RunControl, on_progress: OnProgress,
                injector: FaultInjector | None = None, gate: StartGate | None = None,
                dial: tuple[str, int] | None = None,
                on_start: Callable[[int], None] | None = None) -> None:
    """Open the connections, fix the schedule's zero, send and receive until done.

    ``gate`` makes this process drive global connections ``[conn_offset,
    conn_offset + connections)`` of the scenario's ``load.connections`` and
    take the schedule's zero from the driver; without it this process drives
    them all. ``dial`` is where clients connect when the run goes through the
    fault proxy; ``on_start`` is told the schedule's zero (monotonic ns).
    """
    ctx = run_context(scenario, url=url, recorder=recorder, control=control,
                      injector=injector, gate=gate, dial=dial)
    conns, first = await open_clients(ctx, open_all=open_all, writer=writer)
    for c in conns:
        c.faults = injector
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
    async with asyncio.TaskGroup() as tg:
        tasks = []
        for c, handle in zip(conns, first, strict=True):
            tasks.append(tg.create_task(c.run(handle), name=f"{c.name}.receive"))
            tasks.append(tg.create_task(c.send_all(), name=f"{c.name}.send"))
        background = [
            tg.create_task(flush_loop(recorder, writer, tracker, scenario, on_progress),
                           name="capture.flush"),
            tg.create_task(sweep_loop(ctx, conns), name="timeouts.sweep"),
            tg.create_task(stop_watch(control, tasks), name="run.stop_watch"),
        ]
        if injector is not None:
            background.append(tg.create_task(injector.disconnect_loop(conns),
                                             name="faults.disconnect"))
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in background:
            task.cancel()
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
    now = time.monotonic_ns()
    for c in conns:  # a stopped run still accounts for what it sent
        c.inflight.expire(now + 2 * ctx.timeout_ns, ctx.timeout_ns, c.topic)
    if on_progress is not None:
        on_progress(tracker.update(recorder.rows, final=True))


async def open_all(conns: list[Connection]) -> list[Any]:
    """Open every connection, at most CONNECT_CONCURRENCY handshakes at once.

    The first failure cancels the rest and is raised alone (one clear
    error, not a group of identical ones).
    """
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(c: Connection) -> Any:
        async with gate:
            return await c.open()

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(open_one(c), name=f"{c.name}.open") for c in conns]
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return [t.result() for t in tasks]


async def flush_loop(recorder: Recorder, writer: CaptureWriter, tracker: ProgressTracker,
                     scenario: Scenario, on_progress: OnProgress) -> None:
    """Hand the captured rows to the writer thread every ``flush_every`` (or ``flush_rows``)."""
    every = scenario.capture.flush_every
    limit = scenario.capture.flush_rows
    while True:
        deadline = time.monotonic() + every
        # Polling the row count: the hot path must not pay for an Event per append.
        while time.monotonic() < deadline and len(recorder.rows) < limit:  # noqa: ASYNC110
            await asyncio.sleep(min(0.1, every))
        batch = recorder.take()
        snapshot = tracker.update(batch)
        writer.submit(batch)
        if on_progress is not None:
            on_progress(snapshot)


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


async def stop_watch(control: RunControl, tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the clients' tasks when the run is asked to stop."""
    await control.stop_event.wait()
    for task in tasks:
        task.cancel()
