"""The run engine in one process: scenario in, captured run out.

The order of a run:

1. write the manifest (``running``), build the redactor (fails fast on a
   missing hash key), start the embedded target if asked;
2. :func:`streambench.generate.engine.drive.drive`: open every connection
   (the first failure is a clear error: nothing to measure against an
   unreachable target), fix the schedule's zero, send and receive until
   every schedule is done and every reply is in (or timed out), or until a
   signal or :meth:`RunControl.stop` asks;
3. flush everything, write the faults (ground truth), compact the run's
   small parts (:mod:`streambench.capture.compaction`; a long run also
   compacts every ``capture.compact_every`` from a separate process) and
   finish the manifest. Whatever went wrong, the manifest ends saying how:
   a run that failed (a full disk included) says ``failed`` and why.

The summary a user sees is computed from the store afterwards by
:mod:`streambench.api`; the engine never imports analysis.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from streambench.capture.compaction import compact_ended_run, compacting
from streambench.capture.manifest import Manifest, finish_manifest, start_manifest
from streambench.capture.redact import Redactor
from streambench.capture.status import RunStatus
from streambench.capture.store import Store
from streambench.capture.writer import CaptureWriter, Recorder, wall_offset_ns
from streambench.errors import RunInterrupted
from streambench.generate.engine.drive import OnProgress, drive, injector_for
from streambench.generate.engine.lifecycle import (
    RunControl,
    interrupted,
    new_loop_run,
    stop_on_signals,
    target_url,
)
from streambench.generate.engine.progress import ProgressTracker
from streambench.generate.faults.network.child import proxied
from streambench.logs import current_run_id, get_logger
from streambench.scenario.model import Scenario
from streambench.scenario.secrets import public_url, register_scenario

log = get_logger("streambench.run")


@dataclass
class RunOutcome:
    """How a run ended and its finished manifest (the summary comes from the store)."""

    run_id: str
    status: RunStatus
    manifest: Manifest


def new_run_id(name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name}-{secrets.token_hex(2)}"


def redactor_for(scenario: Scenario) -> Redactor:
    """The scenario's redactor; raises at once when a hash key is missing.

    Every process of a run calls this first (one process, the driver, each
    shard), so it also registers the scenario's credentials as this process's
    secrets: they are scrubbed from every row, log line and manifest after.
    Ids are kept where the conversation carries them (``data.request_id``).
    """
    register_scenario(scenario)
    kinds = scenario.kinds()
    keep = [path for kind in kinds for path in (kind.cid_field, kind.seq_field) if path]
    reply_id = "id" if scenario.preset is not None else scenario.reply_id()
    return Redactor(scenario.capture.redaction, cid_field=None, seq_field=None,
                    keep=[*keep, *([reply_id] if reply_id else [])])


async def run_async(
    scenario: Scenario,
    *,
    store: Store,
    run_id: str | None = None,
    on_progress: OnProgress = None,
    control: RunControl | None = None,
    handle_signals: bool = False,
) -> RunOutcome:
    """Run a scenario to the end (or until stopped); everything captured is on disk after."""
    control = control or RunControl()
    control.bind()
    run_id = run_id or new_run_id(scenario.name)
    redactor = redactor_for(scenario)
    manifest = start_manifest(scenario, run_id=run_id, store=store)
    store.claim_run(manifest)  # RunIdTaken if the id was ever used in this store
    writer = CaptureWriter(store, run_id, protocol=scenario.target.protocol,
                           offset_ns=wall_offset_ns(), redactor=redactor,
                           payloads=scenario.capture.payloads)
    recorder = Recorder()
    injector = injector_for(scenario, recorder)
    status: RunStatus = "completed"
    error = None
    failure: BaseException | None = None
    current_run_id.set(run_id)
    log.info("run started: %s against %s", scenario.name, public_url(scenario.target.url),
             extra={"run_id": run_id})
    try:
        with stop_on_signals(control, enabled=handle_signals), compacting(
                store, run_id, every_s=scenario.capture.compact_every,
                planned_s=scenario.load.total_duration):
            async with target_url(scenario, writer) as (url, target_pid), \
                    proxied(scenario, url, writer) as via:
                await drive(scenario, url=url, target_pid=target_pid, recorder=recorder,
                            writer=writer,
                            tracker=ProgressTracker(total_s=scenario.load.total_duration),
                            control=control, on_progress=on_progress, injector=injector,
                            dial=via.dial, on_start=via.start)
        if control.reason is not None:
            status = "aborted"
    except BaseException as exc:  # recorded in the manifest, raised below
        failure = exc
        status, error = ("aborted", None) if interrupted(exc) else ("failed", str(exc))
    # the rest of the events and the ground truth of the client-side faults; the last
    # batches failing (a full disk) fail the run too
    truth = [] if injector is None else injector.ground_truth(offset_ns=writer.offset_ns)
    unwritten = writer.finish(recorder.take(), faults=truth)
    if unwritten is not None and failure is None:
        failure, status, error = unwritten, "failed", str(unwritten)
    compact_ended_run(store, run_id, status=status, reason=control.reason)
    manifest = finish_manifest(manifest, status=status, error=error, counts=writer.counts(),
                               redaction=redactor.counts, reason=control.reason)
    store.write_manifest(manifest)
    # info, not warning: a failed run's reason is the one line the CLI prints
    log.info("run %s: %d events in %d parts", status, writer.events.rows_written,
             writer.events.parts_written, extra={"run_id": run_id, "status": status})
    if failure is not None:
        raise failure
    return RunOutcome(run_id=run_id, status=status, manifest=manifest)


def run(scenario: Scenario, *, store: Store, run_id: str | None = None,
        on_progress: OnProgress = None, control: RunControl | None = None,
        handle_signals: bool = True) -> RunOutcome:
    """Blocking :func:`run_async` on a fresh event loop (uvloop when available).

    With ``handle_signals`` Ctrl-C and SIGTERM flush what was captured, mark
    the run aborted, and raise :class:`RunInterrupted`.
    """
    outcome = new_loop_run(run_async(scenario, store=store, run_id=run_id,
                                     on_progress=on_progress, control=control,
                                     handle_signals=handle_signals))
    raise_if_signalled(outcome)
    return outcome


def raise_if_signalled(outcome: RunOutcome) -> None:
    """A run stopped by SIGINT/SIGTERM ends the program: :class:`RunInterrupted`."""
    reason = outcome.manifest.get("abort_reason", "")
    if outcome.status == "aborted" and reason.startswith("SIG"):
        raise RunInterrupted(outcome.run_id, reason)
