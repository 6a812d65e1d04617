"""The run engine: scenario in, captured run out.

One ``asyncio.TaskGroup`` per run; every task is named after what it does.
The order of a run:

1. write the manifest (``running``), build the redactor (fails fast on a
   missing hash key), start the embedded target if asked;
2. open every connection (the first failure is a clear error: nothing to
   measure against an unreachable target);
3. fix the schedule's zero, start one sender per connection, a flusher that
   hands the captured rows to the writer thread every ``flush_every``, and a
   sweeper that turns overdue messages into timeouts;
4. when every schedule is done and every reply is in (or timed out), or when
   a signal or :meth:`RunControl.stop` asks, flush everything, write the
   faults (ground truth), finish the manifest and summarise from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from streambench.capture.redact import Redactor
from streambench.capture.store import Store
from streambench.capture.writer import CaptureWriter, Recorder, wall_offset_ns
from streambench.errors import RunInterrupted, StreambenchError
from streambench.generate.clients import Connection, embedded_url, open_clients
from streambench.generate.context import RunContext
from streambench.generate.faults import FaultPlan
from streambench.generate.inject import FaultInjector
from streambench.generate.manifest import finish_manifest, start_manifest
from streambench.generate.progress import Progress, ProgressTracker
from streambench.generate.schedule import schedule
from streambench.logs import current_run_id
from streambench.scenario.model import Scenario
from streambench.scenario.secrets import public_url, resolve
from streambench.scenario.synth import compile_body

log = logging.getLogger("streambench.run")
_CONNECT_CONCURRENCY = 256  # handshakes in flight at once when opening many connections


def start_headroom_ns(connections: int) -> int:
    """How far ahead of now the schedule's zero is set once the connections are open.

    Every sender must be running before its first message is due, and
    creating and first running the tasks of a connection takes 110-200 us
    (measured with 10,000 connections: the last sender started 1.1 s after
    the zero was set). With a fixed 5 ms the first second or two of such a
    run would be late: lag at the start, not the target's fault.
    """
    return 5_000_000 + 200_000 * connections


@dataclass
class RunControl:
    """A handle to stop a run from elsewhere (a signal, a dashboard's stop button)."""

    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        if self.reason is None:
            self.reason = reason
        self.stop_event.set()


@dataclass
class RunResult:
    run_id: str
    status: str  # completed | aborted | failed
    manifest: dict[str, Any]
    summary: dict[str, Any]


def new_run_id(name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name}-{secrets.token_hex(2)}"


async def run_async(
    scenario: Scenario,
    *,
    store: Store,
    run_id: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    control: RunControl | None = None,
    handle_signals: bool = False,
) -> RunResult:
    """Run a scenario to the end (or until stopped) and return its summary."""
    control = control or RunControl()
    run_id = run_id or new_run_id(scenario.name)
    redactor = Redactor(scenario.capture.redaction, cid_field=scenario.message.cid_field,
                        seq_field=scenario.message.seq_field)
    manifest = start_manifest(scenario, run_id=run_id, store=store)
    store.write_manifest(manifest)
    writer = CaptureWriter(store, run_id, protocol=scenario.target.protocol,
                           offset_ns=wall_offset_ns(), redactor=redactor,
                           payloads=scenario.capture.payloads)
    recorder = Recorder()
    tracker = ProgressTracker(total_s=scenario.load.total_duration)
    injector = _injector(scenario, recorder)
    status, error = "completed", None
    current_run_id.set(run_id)
    log.info("run started: %s against %s", scenario.name, public_url(scenario.target.url),
             extra={"run_id": run_id})
    try:
        with _signals(control, enabled=handle_signals):
            async with _target(scenario, writer) as url:
                await _drive(scenario, url=url, recorder=recorder, writer=writer,
                             tracker=tracker, control=control, on_progress=on_progress,
                             injector=injector)
        if control.reason is not None:
            status = "aborted"
    except BaseException as exc:
        status, error = ("aborted", None) if _interrupted(exc) else ("failed", str(exc))
        raise
    finally:
        writer.submit(recorder.take())
        if injector is not None:  # ground truth of the client-side faults
            writer.submit_faults(injector.ground_truth(offset_ns=writer.offset_ns))
        writer.close()
        manifest = finish_manifest(manifest, status=status, error=error, writer=writer,
                                   redactor=redactor, reason=control.reason)
        store.write_manifest(manifest)
        # info, not warning: a failed run's reason is the one line the CLI prints
        log.info("run %s: %d events in %d parts", status, writer.events.rows_written,
                 writer.events.parts_written, extra={"run_id": run_id, "status": status})
    from streambench.analyze.summary import summarize

    summary = summarize(store.events(run_id), manifest)
    return RunResult(run_id=run_id, status=status, manifest=manifest, summary=summary)


def run(scenario: Scenario, *, store: Store, run_id: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        handle_signals: bool = True) -> RunResult:
    """Blocking :func:`run_async` on a fresh event loop (uvloop when available).

    With ``handle_signals`` Ctrl-C and SIGTERM flush what was captured, mark
    the run aborted, and raise :class:`RunInterrupted` after the summary.
    """
    result = _new_loop_run(run_async(scenario, store=store, run_id=run_id,
                                     on_progress=on_progress, handle_signals=handle_signals))
    if result.status == "aborted" and result.manifest.get("abort_reason", "").startswith("SIG"):
        raise RunInterrupted(result.run_id, result.manifest["abort_reason"])
    return result


def _new_loop_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _drive(scenario: Scenario, *, url: str, recorder: Recorder, writer: CaptureWriter,
                 tracker: ProgressTracker, control: RunControl,
                 on_progress: Callable[[Progress], None] | None,
                 injector: FaultInjector | None = None, shard: Any = None) -> None:
    """Open the connections, fix the schedule's zero, send and receive until done.

    ``shard`` (a :class:`streambench.generate.shards.ShardStart`) makes this
    process drive global connections ``[conn_offset, conn_offset + connections)``
    of the scenario's ``load.connections`` and take the schedule's zero from
    the driver; without it this process drives them all.
    """
    load = scenario.load
    offset = 0 if shard is None else shard.conn_offset
    headers = {k: resolve(v, field=f"target.headers.{k}") for k, v in
               scenario.target.headers.items()}
    pool = compile_body(scenario.message.body, seed=scenario.seed, pool=scenario.message.pool,
                        cid_field=scenario.message.cid_field,
                        seq_field=scenario.message.seq_field)
    ctx = RunContext(
        scenario=scenario, record=recorder.append, start_mono=0, frame=pool.frame,
        url=resolve(url, field="target.url"), headers=headers, stop=control.stop_event,
        schedule=lambda conn: schedule(load, seed=scenario.seed, conn=offset + conn,
                                       connections=load.connections),
        conn_offset=offset,
        connections=load.connections if shard is None else shard.connections,
    )
    if injector is not None:  # burst faults add arrivals to the schedules
        plan = injector.plan
        ctx.schedule = lambda conn: plan.schedule(
            schedule(load, seed=scenario.seed, conn=offset + conn, connections=load.connections),
            conn=offset + conn)
    conns, first = await open_clients(ctx, open_all=_open_all, writer=writer)
    for c in conns:
        c.faults = injector
    if shard is None:
        ctx.start_mono = time.monotonic_ns() + start_headroom_ns(len(conns))
    else:  # the zero common to every shard of the run
        ctx.start_mono = await shard.start_mono()
    tracker.start(ctx.start_mono)
    if injector is not None:
        injector.start_mono = ctx.start_mono
        injector.record_bursts(conns)
    async with asyncio.TaskGroup() as tg:
        tasks = []
        for c, ws in zip(conns, first, strict=True):
            tasks.append(tg.create_task(c.run(ws), name=f"{c.name}.receive"))
            tasks.append(tg.create_task(c.send_all(), name=f"{c.name}.send"))
        background = [
            tg.create_task(_flush_loop(recorder, writer, tracker, scenario, on_progress),
                           name="capture.flush"),
            tg.create_task(_sweep_loop(ctx, conns), name="timeouts.sweep"),
            tg.create_task(_stop_watch(control, tasks), name="run.stop_watch"),
        ]
        if injector is not None:
            background.append(tg.create_task(injector.disconnect_loop(conns),
                                             name="faults.disconnect"))
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in background:
            task.cancel()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    now = time.monotonic_ns()
    for c in conns:  # a stopped run still accounts for what it sent
        c.inflight.expire(now + 2 * ctx.timeout_ns, ctx.timeout_ns, c.topic)
    if on_progress is not None:
        on_progress(tracker.update(recorder.rows, final=True))


async def _open_all(conns: list[Connection]) -> list[Any]:
    gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

    async def open_one(c: Connection) -> Any:
        async with gate:
            return await c.open()

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(open_one(c), name=f"{c.name}.open") for c in conns]
    except BaseExceptionGroup as group:  # one clear error, not a group of identical ones
        raise _first_error(group) from None
    return [t.result() for t in tasks]


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first StreambenchError in ``group`` (else its first leaf exception)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack[:0] = exc.exceptions
        else:
            leaves.append(exc)
    return next((e for e in leaves if isinstance(e, StreambenchError)), leaves[0])


def _injector(scenario: Scenario, recorder: Recorder) -> FaultInjector | None:
    """The run's fault injector, or None when the scenario has no ``faults:``."""
    if not scenario.faults:
        return None
    plan = FaultPlan(scenario.faults, seed=scenario.seed, connections=scenario.load.connections,
                     duration_s=scenario.load.total_duration,
                     cid_field=scenario.message.cid_field, seq_field=scenario.message.seq_field)
    return FaultInjector(plan, record=recorder.append)


async def _flush_loop(recorder: Recorder, writer: CaptureWriter, tracker: ProgressTracker,
                      scenario: Scenario, on_progress: Callable[[Progress], None] | None) -> None:
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


async def _sweep_loop(ctx: RunContext, conns: list[Connection]) -> None:
    timeout_ns = ctx.timeout_ns
    interval = min(0.05, ctx.scenario.load.timeout / 10)
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic_ns()
        for c in conns:
            if c.inflight.pending:
                c.inflight.expire(now, timeout_ns, c.topic)


async def _stop_watch(control: RunControl, tasks: list[asyncio.Task[None]]) -> None:
    await control.stop_event.wait()
    for task in tasks:
        task.cancel()


@contextlib.asynccontextmanager
async def _target(scenario: Scenario, writer: CaptureWriter) -> AsyncIterator[str]:
    """The target URL; for ``url: embedded`` the built-in target in a child process."""
    if not scenario.target.embedded:
        yield scenario.target.url
        return
    from streambench.target.embedded import EmbeddedTarget

    target = EmbeddedTarget(scenario.target.server)
    try:
        async with target:
            yield embedded_url(scenario, ws_url=target.ws_url, http_url=target.http_url)
    finally:
        with contextlib.suppress(Exception):
            writer.submit_faults(target.faults())


@contextlib.contextmanager
def _signals(control: RunControl, *, enabled: bool) -> Any:
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, control.stop, sig.name)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _interrupted(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
