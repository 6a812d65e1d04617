"""Scoring detections against the ground truth: precision, recall, time to detect.

An anomaly *matches* a fault when their time windows overlap, allowing
``tolerance_s`` on either side, and (when both carry one) their ``run_id`` is
the same. Then:

* a fault is **detected** if any anomaly matches it; its **time to detect** is
  ``max(0, anomaly start - fault start)`` for the earliest matching anomaly
  (anomaly windows say when the problem happened, so this is how late the
  detected window begins, not the paging delay of a live run);
* an anomaly is a **true positive** if it matches any fault, else a **false
  positive**.

**Baseline conditions are not faults.** The built-in target's latency knob
writes one ``delay`` row (``source`` ``target``, ``detail``
``latency=20ms jitter=5ms``) covering its whole serving time: a steady added
latency for the whole run, a property of the system under test like its normal
service time, not an incident with a start and an end. Such rows are left out:
not counted as faults to detect, and an anomaly overlapping only them is a
false positive. A ``delay`` fault in a window (client-side messages held back,
or any other source) is an incident and is scored.

**Anomalies that blame the load generator are not scored.** A
``generator-stall`` (``cause: generator``) says the client fell behind its
schedule, a statement about the measurement rather than a detection of a
fault in the system under test: it is neither a true nor a false positive,
and is counted apart (``DetectionScore.client_bound``).

Per fault kind: recall is detected / injected faults of that kind; precision
is true positives attributed to the kind / all anomalies attributed to it. A
matching anomaly is attributed to the kinds of the faults it matches (those in
its rule's ``detects`` first); a false positive to its rule's ``detects`` kinds
(or ``unattributed``). Overall precision and recall count every anomaly and
every fault once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from streambench.analyze.types import Anomaly, parse_time_ns


@dataclass(frozen=True)
class KindScore:
    kind: str
    faults: int = 0
    detected: int = 0
    true_positives: int = 0
    false_positives: int = 0
    time_to_detect_s: tuple[float, ...] = ()

    @property
    def recall(self) -> float | None:
        return self.detected / self.faults if self.faults else None

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None

    def to_dict(self) -> dict[str, Any]:
        ttd = sorted(self.time_to_detect_s)
        return {
            "kind": self.kind, "faults": self.faults, "detected": self.detected,
            "recall": self.recall, "true_positives": self.true_positives,
            "false_positives": self.false_positives, "precision": self.precision,
            "ttd_mean_s": sum(ttd) / len(ttd) if ttd else None,
            "ttd_max_s": ttd[-1] if ttd else None,
        }  # fmt: skip


@dataclass(frozen=True)
class DetectionScore:
    per_kind: dict[str, KindScore]
    anomalies: int
    true_positives: int
    faults: int
    detected: int
    false_positive_anomalies: tuple[Anomaly, ...] = field(default=(), repr=False)
    client_bound: int = 0  # anomalies blaming the load generator, not scored

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.anomalies if self.anomalies else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.faults if self.faults else None

    def table(self) -> pl.DataFrame:
        """One row per kind: faults, detected, recall, TP, FP, precision, ttd."""
        return pl.DataFrame([s.to_dict() for s in self.per_kind.values()])

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "anomalies": self.anomalies,
                "true_positives": self.true_positives, "faults": self.faults,
                "detected": self.detected, "client_bound": self.client_bound,
                "per_kind": [s.to_dict() for s in self.per_kind.values()]}  # fmt: skip


@dataclass(frozen=True)
class _Fault:
    run_id: str | None
    kind: str
    start: int
    end: int


def _is_baseline(row: Mapping[str, Any]) -> bool:
    """The target's steady latency knob: a property of the run, not an incident."""
    return (row.get("source") == "target" and row["kind"] == "delay"
            and str(row.get("detail") or "").startswith("latency="))  # fmt: skip


def _faults(truth: Any) -> list[_Fault]:
    if isinstance(truth, pl.LazyFrame):
        truth = truth.collect()
    rows = truth.to_dicts() if isinstance(truth, pl.DataFrame) else list(truth)
    return [
        _Fault(r.get("run_id"), r["kind"], parse_time_ns(r["start"]), parse_time_ns(r["end"]))
        for r in rows
        if not _is_baseline(r)
    ]


def _anomaly(item: Anomaly | Mapping[str, Any]) -> Anomaly:
    return item if isinstance(item, Anomaly) else Anomaly.from_dict(dict(item))


def _matches(a: Anomaly, f: _Fault, slack: int) -> bool:
    same_run = a.run_id is None or f.run_id is None or a.run_id == f.run_id
    return same_run and a.start < f.end + slack and f.start - slack < a.end


def score_detections(
    anomalies: Iterable[Anomaly | Mapping[str, Any]],
    ground_truth_faults: Any,
    *,
    tolerance_s: float = 1.0,
) -> DetectionScore:
    """Score ``anomalies`` (objects or their JSON dicts) against the injected faults
    (a FAULT_SCHEMA frame, LazyFrame or list of dicts with kind, start, end, run_id)."""
    every = [_anomaly(a) for a in anomalies]
    found = [a for a in every if a.cause != "generator"]
    faults = _faults(ground_truth_faults)
    slack = int(tolerance_s * 1e9)
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"faults": 0, "detected": 0, "tp": 0, "fp": 0, "ttd": []}
    )
    for fault in faults:
        hits = [a for a in found if _matches(a, fault, slack)]
        entry = stats[fault.kind]
        entry["faults"] += 1
        if hits:
            entry["detected"] += 1
            entry["ttd"].append(max(0.0, (min(a.start for a in hits) - fault.start) / 1e9))
    false_positives = []
    for a in found:
        kinds = {f.kind for f in faults if _matches(a, f, slack)}
        if kinds:
            preferred = kinds & set(a.detects) or kinds
            for kind in preferred:
                stats[kind]["tp"] += 1
        else:
            false_positives.append(a)
            for kind in a.detects or ("unattributed",):
                stats[kind]["fp"] += 1
    per_kind = {
        kind: KindScore(kind, s["faults"], s["detected"], s["tp"], s["fp"], tuple(s["ttd"]))
        for kind, s in sorted(stats.items())
    }
    return DetectionScore(
        per_kind=per_kind,
        anomalies=len(found),
        true_positives=len(found) - len(false_positives),
        faults=len(faults),
        detected=sum(s["detected"] for s in stats.values()),
        false_positive_anomalies=tuple(false_positives),
        client_bound=len(every) - len(found),
    )
