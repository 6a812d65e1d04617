"""The run engine in one process: scenario in, captured run out.

The order of a run:

1. write the manifest (``running``), build the redactor (fails fast on a
   missing hash key), start the embedded target if asked;
2. :func:`streambench.generate.engine.drive.drive`: open every connection
   (the first failure is a clear error: nothing to measure against an
   unreachable target), fix the schedule's zero, send and receive until
   every schedule is done and every reply is in (or timed out), or until a
   signal or :meth:`RunControl.stop` asks;
3. flush everything, write the faults (ground truth) and finish the manifest.

The summary a user sees is computed from the store afterwards by
:mod:`streambench.api`; the engine never imports analysis.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

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
    """
    register_scenario(scenario)
    return Redactor(scenario.capture.redaction, cid_field=scenario.message.cid_field,
                    seq_field=scenario.message.seq_field)


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
    run_id = run_id or new_run_id(scenario.name)
    redactor = redactor_for(scenario)
    manifest = start_manifest(scenario, run_id=run_id, store=store)
    store.write_manifest(manifest)
    writer = CaptureWriter(store, run_id, protocol=scenario.target.protocol,
                           offset_ns=wall_offset_ns(), redactor=redactor,
                           payloads=scenario.capture.payloads)
    recorder = Recorder()
    injector = injector_for(scenario, recorder)
    status: RunStatus = "completed"
    error = None
    current_run_id.set(run_id)
    log.info("run started: %s against %s", scenario.name, public_url(scenario.target.url),
             extra={"run_id": run_id})
    try:
        with stop_on_signals(control, enabled=handle_signals):
            async with target_url(scenario, writer) as url, \
                    proxied(scenario, url, writer) as via:
                await drive(scenario, url=url, recorder=recorder, writer=writer,
                            tracker=ProgressTracker(total_s=scenario.load.total_duration),
                            control=control, on_progress=on_progress, injector=injector,
                            dial=via.dial, on_start=via.start)
        if control.reason is not None:
            status = "aborted"
    except BaseException as exc:
        status, error = ("aborted", None) if interrupted(exc) else ("failed", str(exc))
        raise
    finally:
        writer.submit(recorder.take())
        if injector is not None:  # ground truth of the client-side faults
            writer.submit_faults(injector.ground_truth(offset_ns=writer.offset_ns))
        writer.close()
        manifest = finish_manifest(manifest, status=status, error=error,
                                   counts=writer.counts(), redaction=redactor.counts,
                                   reason=control.reason)
        store.write_manifest(manifest)
        # info, not warning: a failed run's reason is the one line the CLI prints
        log.info("run %s: %d events in %d parts", status, writer.events.rows_written,
                 writer.events.parts_written, extra={"run_id": run_id, "status": status})
    return RunOutcome(run_id=run_id, status=status, manifest=manifest)


def run(scenario: Scenario, *, store: Store, run_id: str | None = None,
        on_progress: OnProgress = None, handle_signals: bool = True) -> RunOutcome:
    """Blocking :func:`run_async` on a fresh event loop (uvloop when available).

    With ``handle_signals`` Ctrl-C and SIGTERM flush what was captured, mark
    the run aborted, and raise :class:`RunInterrupted`.
    """
    outcome = new_loop_run(run_async(scenario, store=store, run_id=run_id,
                                     on_progress=on_progress, handle_signals=handle_signals))
    raise_if_signalled(outcome)
    return outcome


def raise_if_signalled(outcome: RunOutcome) -> None:
    """A run stopped by SIGINT/SIGTERM ends the program: :class:`RunInterrupted`."""
    reason = outcome.manifest.get("abort_reason", "")
    if outcome.status == "aborted" and reason.startswith("SIG"):
        raise RunInterrupted(outcome.run_id, reason)
