from __future__ import annotations

import polars as pl
import pytest

from streambench.analyze import detect_anomalies, load_rules, metrics, score_detections
from streambench.analyze.types import Anomaly
from tests.analyze.helpers import T0_NS, InjectedFault, S, SyntheticRun, synth_run


def anomaly(start: float, end: float, *, detects=("stall",), run_id="r") -> Anomaly:
    return Anomaly(rule="x", kind="stall", severity="error", start=T0_NS + int(start * S),
                   end=T0_NS + int(end * S), fingerprint="x", evidence={}, run_id=run_id,
                   detects=detects)  # fmt: skip


def faults(*rows: tuple[str, float, float]) -> list[dict]:
    return [{"run_id": "r", "kind": k, "start": T0_NS + int(a * S), "end": T0_NS + int(b * S)}
            for k, a, b in rows]  # fmt: skip


def test_precision_recall_and_time_to_detect_per_kind() -> None:
    truth = faults(("stall", 10, 13), ("stall", 30, 33), ("drop", 50, 52))
    found = [anomaly(11, 13), anomaly(11.5, 12), anomaly(70, 71), anomaly(50, 51, detects=())]
    score = score_detections(found, truth, tolerance_s=0.5)
    stall, drop = score.per_kind["stall"], score.per_kind["drop"]
    assert (stall.faults, stall.detected, stall.recall) == (2, 1, 0.5)
    assert (stall.true_positives, stall.false_positives) == (2, 1)
    assert stall.precision == pytest.approx(2 / 3)
    assert stall.to_dict()["ttd_mean_s"] == pytest.approx(1.0)
    assert (drop.recall, drop.precision) == (1.0, 1.0)
    assert (score.precision, score.recall) == (0.75, pytest.approx(2 / 3))
    assert score.table().height == 2


def test_runs_are_matched_by_id_and_json_dicts_are_accepted() -> None:
    truth = pl.DataFrame(faults(("stall", 10, 13)))
    other_run = anomaly(10, 13, run_id="q").to_dict()
    score = score_detections([other_run], truth)
    assert (score.detected, score.true_positives) == (0, 0)


def test_default_rules_score_perfectly_on_a_synthetic_suite() -> None:
    rules, found, truth = load_rules(), [], []
    cases = [
        InjectedFault("stall", 10, 3),
        InjectedFault("drop", 10, 3, 0.05),
        InjectedFault("delay", 10, 3, 50),
        InjectedFault("schema_drift", 10, 3, 0.05),
    ]
    for seed, fault in enumerate([None, *cases]):
        run = SyntheticRun(run_id=f"run{seed}", seed=seed, duration=30,
                           faults=(fault,) if fault else ())  # fmt: skip
        frame, injected, manifest = synth_run(run)
        found += detect_anomalies(metrics(frame.lazy(), manifest=manifest), rules=rules, fixes=())
        truth.append(injected)
    score = score_detections(found, pl.concat(truth))
    assert (score.precision, score.recall) == (1.0, 1.0)
