"""Synthetic runs: realistic event and fault tables without a server or a network.

Used by the analysis tests, ``benchmarks/analyze_speed.py`` and as a stand-in for
the load engine until real fault-injected runs exist. A run is an open-model
schedule (constant rate over round-robin connections) whose replies have
log-normal service times; ``noise=True`` adds what clean production runs show
(short GC-like pauses, a thin latency tail, schedule-lag jitter). Each
:class:`InjectedFault` changes the events the way the client would record it and
adds one ground-truth row to the faults table.

``intensity`` per fault kind:

=============  =============================================================
stall          replies held back for the whole window, then released (1.0)
drop           fraction of replies never sent -> timeouts
error          fraction of replies that are error replies
disconnect     number of connections closed abruptly (down for the window)
delay          milliseconds added to every reply
duplicate      fraction of replies delivered twice
reorder        fraction of replies swapped with the next one on their connection
schema_drift   fraction of replies whose field set changed
malformed      fraction of replies that are not JSON (client error + timeout)
burst          extra send rate, as a multiple of the scenario rate
=============  =============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from streambench.testing.synth_tables import Outcome, build_events, build_faults

FAULT_KINDS: tuple[str, ...] = (
    "stall", "drop", "error", "disconnect", "delay",
    "duplicate", "reorder", "schema_drift", "malformed", "burst",
)  # fmt: skip
CLIENT_FAULTS = frozenset({"burst"})


@dataclass(frozen=True)
class InjectedFault:
    """A fault injected ``at`` seconds into the run for ``duration`` seconds."""

    kind: str
    at: float
    duration: float
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")


@dataclass(frozen=True)
class SyntheticRun:
    """Parameters of one synthetic run (rates in messages/s, times in seconds)."""

    run_id: str = "synthetic"
    scenario: str = "synthetic"
    rate: float = 200.0
    duration: float = 60.0
    connections: int = 10
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    latency_ms: float = 5.0  # median service time
    sigma: float = 0.35  # log-normal shape of service time
    timeout: float = 5.0
    noise: bool = True
    payloads: bool = True
    seed: int = 0
    faults: tuple[InjectedFault, ...] = field(default=())

    @property
    def start_ns(self) -> int:
        return int(self.start.timestamp()) * 1_000_000_000


def _schedule(run: SyntheticRun, rng: np.random.Generator) -> np.ndarray:
    """Intended send times (epoch ns, sorted): the constant schedule plus bursts."""
    n = round(run.rate * run.duration)
    times = [np.arange(n, dtype=np.int64) * int(1e9 / run.rate)]
    for fault in run.faults:
        if fault.kind == "burst":
            extra = round(fault.intensity * run.rate * fault.duration)
            offsets = rng.uniform(fault.at, fault.at + fault.duration, extra) * 1e9
            times.append(offsets.astype(np.int64))
    return np.sort(np.concatenate(times)) + run.start_ns


def _window(run: SyntheticRun, fault: InjectedFault, t: np.ndarray) -> np.ndarray:
    start = run.start_ns + int(fault.at * 1e9)
    return (t >= start) & (t < start + int(fault.duration * 1e9))


def _service_ns(run: SyntheticRun, n: int, rng: np.random.Generator) -> np.ndarray:
    service_ms = rng.lognormal(np.log(run.latency_ms), run.sigma, n)
    if run.noise:  # a thin tail: one message in a thousand takes 2-4x longer
        tail = rng.random(n) < 0.001
        service_ms[tail] *= rng.uniform(2.0, 4.0, tail.sum())
    return (service_ms * 1e6).astype(np.int64)


def _gc_pauses(run: SyntheticRun, recv: np.ndarray, rng: np.random.Generator) -> None:
    """Short pauses every 15-40 s: replies due inside one come out at its end."""
    t = rng.uniform(5, 20)
    while t < run.duration:
        start = run.start_ns + int(t * 1e9)
        end = start + int(rng.uniform(0.02, 0.06) * 1e9)
        held = (recv >= start) & (recv < end)
        recv[held] = end + rng.integers(0, 200_000, held.sum())
        t += rng.uniform(15, 40)


def simulate(run: SyntheticRun) -> Outcome:
    """Decide, per message, what happened to it (pure function of ``run``)."""
    rng = np.random.default_rng(run.seed)
    intended = _schedule(run, rng)
    n = len(intended)
    lag = rng.exponential(30_000, n).astype(np.int64)  # 30 us mean schedule lag
    if run.noise:
        slow = rng.random(n) < 0.002
        lag[slow] += rng.integers(100_000, 2_000_000, slow.sum())
    out = Outcome.start(run, intended, intended + lag, rng)
    out.recv = out.sent + _service_ns(run, n, rng)
    for fault in run.faults:
        if fault.kind == "delay":
            out.recv[_window(run, fault, out.intended)] += int(fault.intensity * 1e6)
    if run.noise:
        _gc_pauses(run, out.recv, rng)
    out.fifo()
    # Stalls first: their in-order release must not undo an injected reorder.
    for fault in sorted(run.faults, key=lambda f: f.kind != "stall"):
        out.apply(fault, _window(run, fault, out.intended), _window(run, fault, out.recv))
    out.finish()
    return out


def synth_run(run: SyntheticRun) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Events (EVENT_SCHEMA columns), faults (FAULT_SCHEMA columns) and the manifest."""
    outcome = simulate(run)
    events = build_events(run, outcome)
    faults = build_faults(run, CLIENT_FAULTS)
    return events, faults, manifest_for(run, events)


def manifest_for(run: SyntheticRun, events: pl.DataFrame) -> dict[str, Any]:
    """The run manifest as the capture store writes it (the keys analysis reads)."""
    ended = run.start_ns + int((run.duration + run.timeout) * 1e9)
    return {
        "run_id": run.run_id,
        "scenario": {
            "name": run.scenario,
            "load": {
                "rate": run.rate,
                "duration": run.duration,
                "connections": run.connections,
                "timeout": run.timeout,
            },
            "slo": {},
        },
        "started": datetime.fromtimestamp(run.start_ns / 1e9, tz=UTC).isoformat(),
        "ended": datetime.fromtimestamp(ended / 1e9, tz=UTC).isoformat(),
        "status": "completed",
        "counts": {"events": events.height},
    }


def write_run(root: str | Path, run: SyntheticRun, *, part_rows: int = 1_000_000
              ) -> dict[str, Any]:
    """Write ``run`` into a store at ``root`` in the capture layout; return its manifest.

    ``<root>/events/date=YYYY-MM-DD/run_id=<id>/part-NNNNN.parquet`` (EVENT_SCHEMA),
    the same under ``faults/`` (FAULT_SCHEMA) and ``<root>/runs/<id>.json``.
    """
    events, faults, manifest = synth_run(run)
    write_tables(root, manifest, events=events, faults=faults, part_rows=part_rows)
    return manifest


def write_tables(
    root: str | Path,
    manifest: dict[str, Any],
    *,
    events: pl.DataFrame,
    faults: pl.DataFrame,
    part_rows: int = 1_000_000,
) -> None:
    """Write already-built event/fault frames and a manifest in the store layout.

    As the capture store does: ``run_id`` lives in the partition path only, parts
    are written under a temporary name and renamed.
    """
    import pyarrow.parquet as pq

    from streambench.capture.schema import EVENT_SCHEMA, FAULT_SCHEMA
    from streambench.capture.store import Store

    store = Store(root)
    date = manifest["started"][:10]
    tables = (("events", events, EVENT_SCHEMA), ("faults", faults, FAULT_SCHEMA))
    for table, frame, schema in tables:
        folder = Path(store.partition_dir(table, date, manifest["run_id"]))
        folder.mkdir(parents=True, exist_ok=True)
        for number, offset in enumerate(range(0, max(frame.height, 1), part_rows)):
            arrow = frame.slice(offset, part_rows).to_arrow().cast(schema).drop_columns(["run_id"])
            tmp = folder / f".part-{number:05d}.parquet.tmp"
            pq.write_table(arrow, tmp)
            tmp.rename(folder / f"part-{number:05d}.parquet")
    store.write_manifest(manifest)
