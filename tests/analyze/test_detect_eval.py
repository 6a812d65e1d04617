"""A small version of benchmarks/detect_eval.py: real runs through the run engine
against the embedded target, anomalies detected from the events alone with the
default rules, then scored against the ground truth the run recorded."""

from __future__ import annotations

import pytest

from benchmarks.detect_eval import Case, Outcome, run_case, summarise
from streambench.analyze import load_rules, score_detections
from streambench.capture.store import Store

RULES = load_rules()
DURATION = 2.5  # seconds per run: the fault-free first window, then faults


def _client(kind: str, **spec: object) -> Case:
    return Case(f"client:{kind}", str(spec), ({"kind": kind, **spec},), rate=200, connections=2)


FAULTY = [
    (_client("drop", probability=0.03), "unsent-messages"),
    (_client("duplicate", probability=0.03), "unmatched-replies"),
    (_client("malformed", probability=0.03), "schema-drift"),
    (_client("schema_drift", at="1s", rename={"text": "body"}), "schema-drift"),
    (Case("target:stall", "400ms every 1s", server={"stall_every": "1s", "stall_for": "400ms"},
          rate=200, connections=2), "reply-stall"),
]  # fmt: skip
CLEAN = [
    Case("clean", "300 msg/s x 3"),
    Case("baseline", "server latency 20ms", server={"latency": "20ms"}, rate=200, connections=2),
]


async def _run(case: Case, store: Store) -> Outcome:
    outcome = await run_case(case, store=store, duration=DURATION, rules=RULES)
    assert outcome.error is None
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize(("case", "rule"), FAULTY, ids=[c.group for c, _ in FAULTY])
async def test_each_injected_fault_is_detected_where_it_happened(
    case: Case, rule: str, store: Store
) -> None:
    outcome = await _run(case, store)
    score = score_detections(outcome.anomalies, outcome.truth)
    assert score.faults > 0
    assert rule in {a.rule for a in outcome.anomalies}
    assert (score.recall, score.precision) == (1.0, 1.0), [
        (a.rule, a.evidence) for a in score.false_positive_anomalies
    ]


@pytest.mark.slow
@pytest.mark.parametrize("case", CLEAN, ids=[c.label for c in CLEAN])
async def test_clean_runs_are_quiet(case: Case, store: Store) -> None:
    outcome = await _run(case, store)
    # Nothing is blamed on the target. On a busy machine the generator itself may fall
    # behind: such windows are attributed to it (cause "generator"), never to the target.
    blamed = [(a.rule, a.evidence) for a in outcome.anomalies if a.cause != "generator"]
    assert blamed == []
    # the target's steady latency is in the ground truth, but as a baseline, not a fault
    assert score_detections(outcome.anomalies, outcome.truth).faults == 0


@pytest.mark.slow
async def test_the_summary_counts_clean_anomalies_and_every_fault_once(store: Store) -> None:
    clean, faulty = CLEAN[0], FAULTY[0][0]
    outcomes = [await _run(case, store) for case in (clean, faulty)]
    summary = summarise(outcomes)
    assert [row["group"] for row in summary["rows"]] == ["clean", "client:drop"]
    assert summary["clean"]["anomalies"] == 0
    assert summary["all"]["faults"] == outcomes[1].truth.height
    assert summary["mean"]["recall"] == summary["all"]["recall"] == 1.0
