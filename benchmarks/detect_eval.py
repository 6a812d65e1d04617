"""Detection quality on real fault-injected runs: precision, recall, time to detect.

    python benchmarks/detect_eval.py [--quick] [--duration 4] [--only TEXT] [--kinds LIST]
                                     [--verbose] [--keep DIR] [--json]

Runs a suite of short scenarios through the real run engine (WebSocket, the
embedded target on 127.0.0.1): clean runs, runs with a steady server latency
(a baseline property, not a fault), every client fault kind and every target
fault kind at several intensities, and every network fault kind through the
fault proxy (with clean runs through it; ``--kinds network`` runs just those).
Each run's anomalies are detected with the default rules
(``rules/anomalies.yaml``) from its events alone; only after that is its ground
truth (``Store.faults``) read, and :func:`score_detections` matches anomalies
to faults by time-window overlap (1 s tolerance).

Prints one row per fault source and kind: runs, faults injected, faults
detected, recall, anomalies, false positives, precision, "by its rule" (the
share of true positives whose rule declares the kind it caught in ``detects``:
a held message caught as a reordered reply is detected, but not by its rule),
mean and max time to detect. Then the whole suite (every fault and every
anomaly counted once) and the mean over kinds (each kind weighs the same), the
anomalies on clean runs, and the goals: precision and recall >= 0.95 by both
counts, zero anomalies on clean runs. Exit status 0 when all hold, else 1.
``generator-stall`` anomalies (the load generator fell behind, see
docs/analysis.md) are counted apart ("generator stalls") and not scored: they
say the machine running the suite starved the client, not that a fault was
or was not found.

A run lasts ``--duration`` seconds (default 4; ``--quick``: 3, one case per
kind); the whole suite takes about 3 minutes, ``--quick`` about 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from streambench.analyze import detect_anomalies, load_rules, metrics, score_detections
from streambench.analyze.types import Anomaly
from streambench.api import run_async
from streambench.capture.store import Store
from streambench.scenario.model import Scenario

GOAL_PRECISION = 0.95
GOAL_RECALL = 0.95
RUN_GRACE_S = 30.0  # a run that has not ended this long after its schedule is abandoned
Spec = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One run of the suite: client ``faults`` and/or target ``server`` knobs."""

    group: str  # "clean", "baseline" (steady server latency) or "<source>:<fault kind>"
    name: str  # the intensity, in words
    faults: tuple[Spec, ...] = ()
    server: Spec | None = None
    network: tuple[Spec, ...] = ()  # network_faults (the run goes through the fault proxy)
    via: bool = False  # through the fault proxy even without network faults
    heartbeat: str | None = None  # load.heartbeat: dead connections are found by pings
    rate: float = 300.0
    connections: int = 3
    seed: int = 1
    arrival: str = "constant"
    quick: bool = False  # part of --quick

    @property
    def label(self) -> str:
        return f"{self.group} {self.name}"

    @property
    def clean(self) -> bool:
        """Nothing to detect: no fault, at most a steady latency (a baseline property)."""
        return self.group in ("clean", "baseline")

    def wanted(self, kinds: list[str]) -> bool:
        """Whether ``--kinds`` selects this case: its group (``network:reset``), its
        source (``network``) or its kind (``reset``); clean cases always run."""
        source, _, kind = self.group.partition(":")
        return self.clean or not kinds or bool({self.group, source, kind} & set(kinds))

    def scenario(self, *, duration: float) -> Scenario:
        server = {**self.server, "seed": self.seed} if self.server else None
        return Scenario.model_validate({
            "name": "eval-" + self.group.replace(":", "-").replace("_", "-"),
            "seed": self.seed,
            "target": {"url": "embedded", "reconnect": {"initial": "50ms", "max": "500ms"},
                       **({"server": server} if server else {}),
                       **({"via": "proxy"} if self.via else {})},
            "load": {"connections": self.connections, "rate": self.rate,
                     "arrival": self.arrival, "duration": duration, "timeout": 1,
                     **({"heartbeat": self.heartbeat} if self.heartbeat else {})},
            "message": {"body": {"text": "{{sentence}}", "value": "{{int:1:100}}"}},
            "faults": list(self.faults),
            "network_faults": list(self.network),
            "capture": {"redaction": {"allow": ["text", "body", "value"]}},
        })  # fmt: skip


def _client(kind: str, name: str, spec: Spec, **options: Any) -> Case:
    return Case(f"client:{kind}", name, ({"kind": kind, **spec},), **options)


def _target(kind: str, name: str, knobs: Spec, **options: Any) -> Case:
    return Case(f"target:{kind}", name, server=knobs, **options)


def _network(kind: str, name: str, *specs: Spec, **options: Any) -> Case:
    """A network fault case: ``specs`` are network_faults (the first one's kind is
    ``kind``; more set the scene, e.g. a reset that makes clients reconnect)."""
    return Case(f"network:{kind}", name, network=tuple({"kind": kind, **specs[0]} if i == 0
                                                       else s for i, s in enumerate(specs)),
                **options)


# Windowed faults start 1.5 s in (after the first full window), so a 3 s run
# still has clean windows on both sides. Intensities go from a few faults per
# run to one in most windows, down to just above each detector's floor (see
# the module docstring of streambench.analyze.score and rules/anomalies.yaml).
Q: dict[str, Any] = {"quick": True}
CASES: list[Case] = [
    Case("clean", "200 msg/s x 2", rate=200, connections=2, **Q),
    Case("clean", "300 msg/s x 3 poisson", seed=2, arrival="poisson"),
    Case("clean", "400 msg/s x 4", rate=400, connections=4, seed=3),
    Case("baseline", "server latency 20ms", server={"latency": "20ms"}, **Q),
    Case("baseline", "server latency 50ms, 400 msg/s x 4", server={"latency": "50ms"},
         rate=400, connections=4, seed=2),
    _client("delay", "50ms p=0.05", {"delay": "50ms", "probability": 0.05}, **Q),
    _client("delay", "30ms p=0.02", {"delay": "30ms", "probability": 0.02}, rate=200,
            connections=2),
    _client("delay", "200ms+-50ms p=0.01", {"delay": "200ms", "jitter": "50ms",
            "probability": 0.01}),
    _client("delay", "100ms all for 1s", {"delay": "100ms", "at": "1.5s", "for": "1s"}, seed=2),
    _client("drop", "p=0.01", {"probability": 0.01}, **Q),
    _client("drop", "p=0.002", {"probability": 0.002}, rate=400, connections=4, seed=5),
    _client("drop", "p=0.2 for 1s", {"probability": 0.2, "at": "1.5s", "for": "1s"}),
    _client("duplicate", "p=0.01", {"probability": 0.01}, **Q),
    _client("duplicate", "p=0.05 x2", {"probability": 0.05, "copies": 2}, rate=200, seed=2),
    _client("reorder", "p=0.01 window 1", {"probability": 0.01}, **Q),
    _client("reorder", "p=0.05 window 3", {"probability": 0.05, "window": 3}, seed=2),
    _client("reorder", "p=0.003", {"probability": 0.003}, rate=400, connections=4, seed=4),
    _client("schema_drift", "rename at 1.5s", {"at": "1.5s", "rename": {"text": "body"}}, **Q),
    _client("schema_drift", "remove+retype p=0.3", {"at": "1.5s", "probability": 0.3,
            "remove": ["text"], "retype": {"value": "string"}}, rate=200, connections=2),
    _client("malformed", "p=0.01", {"probability": 0.01}, **Q),
    _client("malformed", "p=0.002", {"probability": 0.002}, rate=400, connections=4, seed=6),
    _client("disconnect", "all for 500ms", {"at": "1.5s", "fraction": 1.0, "for": "500ms"}, **Q),
    _client("disconnect", "half for 1s", {"at": "1.5s", "fraction": 0.5, "for": "1s"},
            connections=4, seed=2),
    _client("burst", "+100% for 1.5s", {"at": "1.5s", "for": "1.5s", "rate": 300}, **Q),
    _client("burst", "+60% for 1s", {"at": "1.5s", "for": "1s", "rate": 180}, seed=2),
    _client("burst", "+300% for 500ms", {"at": "2s", "for": "500ms", "rate": 800}, rate=200,
            connections=2, seed=3),
    _target("stall", "300ms every 1.5s", {"stall_every": "1.5s", "stall_for": "300ms"}, **Q),
    _target("stall", "1s every 2s", {"stall_every": "2s", "stall_for": "1s"}, seed=2),
    _target("stall", "500ms every 2s, 400 msg/s x 4", {"stall_every": "2s", "stall_for": "500ms"},
            rate=400, connections=4, seed=3),
    _target("drop", "rate 0.005", {"drop_rate": 0.005}, **Q),
    _target("drop", "rate 0.02", {"drop_rate": 0.02}, rate=200, connections=2, seed=2),
    _target("error", "rate 0.005", {"error_rate": 0.005}, **Q),
    _target("error", "rate 0.02", {"error_rate": 0.02}, rate=400, connections=4, seed=2),
    _target("disconnect", "rate 0.001", {"disconnect_rate": 0.001}, **Q),
    _target("disconnect", "rate 0.005", {"disconnect_rate": 0.005}, seed=2),
    _target("disconnect", "every 1.5s", {"disconnect_every": "1.5s"}, connections=4, seed=3),
    # Network faults: the run goes through the fault proxy (docs/network-faults.md).
    Case("clean", "through the proxy, 300 msg/s x 3", via=True, **Q),
    Case("clean", "through the proxy, 400 msg/s x 4 poisson", via=True, rate=400,
         connections=4, seed=4, arrival="poisson"),
    _network("latency", "100ms downstream for 1s", {"delay": "100ms", "direction": "downstream",
             "at": "1.5s", "for": "1s"}, **Q),
    _network("latency", "30ms+-20ms, half the connections", {"delay": "30ms", "jitter": "20ms",
             "share": 0.5, "at": "1.5s", "for": "1s"}, connections=4, seed=2),
    _network("bandwidth", "6KB/s downstream for 1s", {"rate": "6KB/s",
             "direction": "downstream", "at": "1.5s", "for": "1s"}, **Q),
    _network("bandwidth", "4KB/s both for 500ms", {"rate": "4KB/s", "at": "2s",
             "for": "500ms"}, seed=2),
    _network("slicer", "16 B slices 1ms apart downstream", {"size": 16, "delay": "1ms",
             "direction": "downstream", "at": "1.5s", "for": "1s"}, **Q),
    _network("slicer", "8+-4 B slices upstream", {"size": 8, "variation": 4, "delay": "1ms",
             "direction": "upstream", "at": "1.5s", "for": "1s"}, rate=200, connections=2,
             seed=2),
    _network("blackhole", "some connections, found by heartbeats", {"share": 0.5,
             "at": "1.5s", "for": "1s"}, heartbeat="300ms", connections=4, **Q),
    _network("blackhole", "all downstream from 2s, no heartbeat", {"direction": "downstream",
             "at": "2s"}, seed=2),
    _network("reset", "all at 1.5s", {"at": "1.5s", "direction": "downstream"}, **Q),
    _network("reset", "half upstream every 1s", {"at": "1.5s", "every": "1s", "share": 0.5,
             "direction": "upstream"}, connections=4, seed=2),
    _network("slow_close", "500ms on the target's closes", {"delay": "500ms",
             "direction": "downstream", "at": "1.5s", "for": "1s"},
             server={"disconnect_every": "1s"}, **Q),
    _network("refuse", "for 1s after a reset", {"at": "1.5s", "for": "1s"},
             {"kind": "reset", "at": "1.5s"}, **Q),
    _network("close_after", "2 KB upstream for 1s", {"bytes": 2000, "direction": "upstream",
             "at": "1.5s", "for": "1s"}, **Q),
    _network("close_after", "5 KB downstream, half", {"bytes": 5000,
             "direction": "downstream", "at": "1.5s", "for": "1s", "share": 0.5},
             connections=4, seed=2),
]  # fmt: skip


@dataclass
class Outcome:
    """One run: its anomalies (found from events only) and, read after, its ground truth."""

    case: Case
    run_id: str
    anomalies: list[Anomaly]
    truth: pl.DataFrame
    t0_ns: int
    seconds: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)


async def run_case(case: Case, *, store: Store, duration: float, rules: Any) -> Outcome:
    """Run one case, detect its anomalies, then (only then) read its ground truth."""
    started = time.perf_counter()
    scenario = case.scenario(duration=duration)
    try:
        async with asyncio.timeout(duration + RUN_GRACE_S):
            result = await run_async(scenario, store=store)
    except TimeoutError:
        return Outcome(case, "", [], pl.DataFrame(), 0, time.perf_counter() - started,
                       error=f"did not end within {duration + RUN_GRACE_S:g} s")  # fmt: skip
    measured = metrics(store.events(result.run_id), manifest=store.manifest(result.run_id))
    found = detect_anomalies(measured, rules=rules, fixes=())  # no ground truth passed in
    truth = store.faults(result.run_id).collect()
    return Outcome(case, result.run_id, found, truth, measured.t0,
                   time.perf_counter() - started)  # fmt: skip


async def run_suite(cases: list[Case], *, root: Path, duration: float) -> list[Outcome]:
    store, rules = Store(root), load_rules()
    outcomes = []
    for number, case in enumerate(cases, 1):
        outcome = await run_case(case, store=store, duration=duration, rules=rules)
        outcomes.append(outcome)
        print(progress_line(number, len(cases), outcome), file=sys.stderr, flush=True)
    return outcomes


def progress_line(number: int, total: int, outcome: Outcome) -> str:
    head = f"[{number:2d}/{total}] {outcome.case.label:<34} {outcome.seconds:5.1f}s"
    if outcome.error:
        return f"{head}  FAILED: {outcome.error}"
    score = score_detections(outcome.anomalies, outcome.truth)
    false = score.anomalies - score.true_positives
    return (f"{head}  faults {score.faults:4d} detected {score.detected:4d}  "
            f"anomalies {score.anomalies:2d} (false {false})  "
            f"generator stalls {score.client_bound}")  # fmt: skip


def describe(outcome: Outcome) -> list[str]:
    """The run's anomalies and missed faults, as offsets from its first second."""
    t0, lines = outcome.t0_ns, []
    score = score_detections(outcome.anomalies, outcome.truth)
    false = {id(a) for a in score.false_positive_anomalies}
    for a in outcome.anomalies:
        mark = "FALSE" if id(a) in false else "ok"
        span = f"{(a.start - t0) / 1e9:6.2f}-{(a.end - t0) / 1e9:6.2f}s"
        evidence = json.dumps(a.evidence, default=str)[:150]
        lines.append(f"    {mark:5} {a.rule:<24} {span} {evidence}")
    for row in outcome.truth.iter_rows(named=True):
        alone = score_detections(outcome.anomalies, [row])
        if alone.faults and not alone.detected:
            start = row["start"].timestamp() - t0 / 1e9
            lines.append(
                f"    MISSED {row['source']}:{row['kind']} at {start:.2f}s {row['detail']}"
            )
    return lines


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Rows per fault group, the whole suite (each fault and anomaly counted once),
    the mean over the fault groups (each kind weighs the same), the clean runs."""
    groups: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.case.group, []).append(outcome)
    rows = [_group_row(group, members) for group, members in groups.items()]
    faulty = [r for r in rows if r["faults"]]
    mean = {"group": "mean over kinds", "runs": sum(r["runs"] for r in faulty)}
    for key in ("recall", "precision"):
        values = [r[key] for r in faulty if r[key] is not None]
        mean[key] = sum(values) / len(values) if values else None
    return {"rows": rows, "all": _group_row("all", outcomes), "mean": mean,
            "clean": _group_row("clean", [o for o in outcomes if o.case.clean])}  # fmt: skip


def _group_row(group: str, members: list[Outcome]) -> dict[str, Any]:
    anomalies = [a for o in members for a in o.anomalies]
    truths = [o.truth for o in members if o.truth.height]
    truth: pl.DataFrame | list[Any] = pl.concat(truths, how="diagonal_relaxed") if truths else []
    score = score_detections(anomalies, truth)
    ttd = [t for k in score.per_kind.values() for t in k.time_to_detect_s]
    verdicts = [_by_its_rule(a, o.truth) for o in members for a in o.anomalies]
    own = [x for x in verdicts if x is not None]
    return {
        "group": group, "runs": len(members), "faults": score.faults,
        "detected": score.detected, "recall": score.recall, "anomalies": score.anomalies,
        "false_positives": score.anomalies - score.true_positives, "precision": score.precision,
        "by_its_rule": sum(own) / len(own) if own else None,
        "ttd_mean_s": sum(ttd) / len(ttd) if ttd else None, "ttd_max_s": max(ttd, default=None),
        "client_bound": score.client_bound,
        "failed_runs": sum(1 for o in members if o.error),
    }  # fmt: skip


def _by_its_rule(anomaly: Anomaly, truth: pl.DataFrame) -> bool | None:
    """For a true positive: does its rule declare (``detects``) a kind it matched?
    (A held message caught as a reordered reply is detected, but not by its rule.)"""
    if not truth.height:
        return None
    matched = score_detections([anomaly], truth).per_kind
    kinds = {kind for kind, s in matched.items() if s.true_positives}
    return bool(kinds & set(anomaly.detects)) if kinds else None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


COLUMNS = {
    "group": "kind", "runs": "runs", "faults": "faults", "detected": "detected",
    "recall": "recall", "anomalies": "anomalies", "false_positives": "false",
    "precision": "precision", "by_its_rule": "by its rule", "ttd_mean_s": "ttd mean s",
    "ttd_max_s": "ttd max s", "client_bound": "generator stalls",
}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width text table, one line per row (missing values as ``-``)."""
    cells = [list(COLUMNS.values()), *[[_cell(r.get(c)) for c in COLUMNS] for r in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(line, widths, strict=True))) for line in cells]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(summary: dict[str, Any]) -> tuple[list[str], bool]:
    """One line per goal (met / NOT MET) and whether all are met."""
    every, mean, clean = summary["all"], summary["mean"], summary["clean"]
    checks = [
        (f"precision {_cell(every['precision'])} (mean over kinds "
         f"{_cell(mean['precision'])}) >= {GOAL_PRECISION}",
         min(every["precision"] or 0, mean["precision"] or 0) >= GOAL_PRECISION),
        (f"recall {_cell(every['recall'])} (mean over kinds {_cell(mean['recall'])}) "
         f">= {GOAL_RECALL}", min(every["recall"] or 0, mean["recall"] or 0) >= GOAL_RECALL),
        (f"anomalies on {clean['runs']} clean runs: {clean['anomalies']} (goal 0)",
         clean["anomalies"] == 0),
        (f"runs that failed to finish: {every['failed_runs']}", every["failed_runs"] == 0),
    ]  # fmt: skip
    lines = [f"{'met    ' if ok else 'NOT MET'}  {text}" for text, ok in checks]
    return lines, all(ok for _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case per kind, 3 s runs")
    parser.add_argument("--duration", type=float, help="seconds per run (default 4, quick 3)")
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--kinds", help="run only these fault kinds (and the clean runs): a "
                        "comma list of groups (network:reset), sources (network) or kinds")
    parser.add_argument("--verbose", action="store_true", help="list every run's anomalies")
    parser.add_argument("--keep", help="write the store here instead of a temporary directory")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 4.0)
    kinds = [k.strip() for k in (args.kinds or "").split(",") if k.strip()]
    cases = [c for c in CASES if (c.quick or not args.quick) and c.wanted(kinds)
             and (not args.only or args.only in c.label)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="detect-eval-") as tmp:
        started = time.perf_counter()
        outcomes = _run(run_suite(cases, root=Path(args.keep or tmp), duration=duration))
        elapsed = time.perf_counter() - started
    summary = summarise(outcomes)
    lines, ok = verdict(summary)
    if args.json:
        print(json.dumps({**summary, "goals_met": ok, "runs": len(outcomes),
                          "duration_s": duration, "seconds": round(elapsed, 1)}, indent=2))
        return 0 if ok else 1
    if args.verbose:
        for outcome in outcomes:
            print(f"{outcome.case.label} ({outcome.run_id or outcome.error})")
            print("\n".join(describe(outcome)) or "    (nothing)")
    print(table([*summary["rows"], summary["all"], summary["mean"]]))
    print(f"\n{len(outcomes)} runs of {duration:g} s in {elapsed:.0f} s; default rules; "
          "anomalies match faults by window overlap with 1 s tolerance")  # fmt: skip
    print("\n".join(lines))
    return 0 if ok else 1


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
