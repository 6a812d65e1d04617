"""Each default rule fires on its fault, stays quiet on clean runs, and places
incidents where the problem happened."""

from __future__ import annotations

import pytest

from streambench.analyze import detect_anomalies, load_rules, metrics, parse_rules
from streambench.analyze.types import Anomaly
from tests.analyze.helpers import T0_NS, InjectedFault, S, SyntheticRun, synth_run

RULES = load_rules()


def run(*faults: InjectedFault, rules=RULES, history=(), **options) -> list[Anomaly]:
    frame, truth, manifest = synth_run(SyntheticRun(duration=40, faults=faults, **options))
    measured = metrics(frame.lazy(), manifest=manifest)
    return detect_anomalies(measured, rules=rules, faults=truth, history=history, fixes=())


def measure(**options):
    frame, _, manifest = synth_run(SyntheticRun(duration=40, **options))
    return metrics(frame.lazy(), manifest=manifest)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rate", [50.0, 400.0])
def test_clean_runs_have_no_anomalies(seed: int, rate: float) -> None:
    assert run(seed=seed, rate=rate) == []


@pytest.mark.parametrize(
    ("fault", "expected_rules"),
    [
        (InjectedFault("stall", 15, 3), {"reply-stall", "throughput-drop", "latency-shift"}),
        (InjectedFault("drop", 15, 3, 0.05), {"lost-replies"}),
        (InjectedFault("error", 15, 3, 0.05), {"error-replies"}),
        (InjectedFault("disconnect", 15, 1, 1), {"unexpected-disconnects", "connection-errors"}),
        (InjectedFault("delay", 15, 3, 30), {"latency-shift"}),
        (InjectedFault("duplicate", 15, 3, 0.05), {"duplicate-replies"}),
        (InjectedFault("reorder", 15, 3, 0.05), {"reordered-replies"}),
        (InjectedFault("schema_drift", 15, 3, 0.05), {"schema-drift"}),
        (InjectedFault("malformed", 15, 3, 0.05), {"malformed-replies", "lost-replies"}),
        (InjectedFault("burst", 15, 3, 1.0), {"send-burst"}),
    ],
    ids=lambda v: v.kind if isinstance(v, InjectedFault) else "",
)
def test_each_fault_kind_is_caught_by_its_rules(fault, expected_rules: set[str]) -> None:
    found = run(fault)
    assert expected_rules <= {a.rule for a in found}
    assert found  # nothing else fired
    assert all(a.injected == (fault.kind,) for a in found)
    start = T0_NS + int(fault.at * S)
    for anomaly in found:
        assert start - 2 * S <= anomaly.start <= start + 2 * S


def test_one_stall_is_one_incident_and_two_stalls_are_two() -> None:
    found = run(InjectedFault("stall", 10, 3), InjectedFault("stall", 25, 3))
    stalls = [a for a in found if a.rule == "reply-stall"]
    assert [round((a.start - T0_NS) / S) for a in stalls] == [10, 25]
    assert all(a.duration_s == pytest.approx(3, abs=0.1) for a in stalls)
    assert stalls[0].evidence["silence_s"] >= 2.9
    assert stalls[0].evidence["pending"] > 100


def test_adjacent_windows_merge_into_one_incident() -> None:
    found = run(InjectedFault("error", 10, 6, 0.2))
    errors = [a for a in found if a.rule == "error-replies"]
    assert len(errors) == 1
    assert errors[0].evidence["windows"] == 6
    assert errors[0].evidence["count"] == pytest.approx(0.2 * 200 * 6, rel=0.25)
    assert errors[0].fingerprint == "error-replies:synthetic:injected error"


def test_lost_replies_belong_to_their_send_time_not_their_timeout() -> None:
    (lost,) = [a for a in run(InjectedFault("drop", 12, 2, 0.1), timeout=5.0)
               if a.rule == "lost-replies"]  # fmt: skip
    assert lost.start == T0_NS + 12 * S  # not 17..19 s
    assert lost.end == T0_NS + 14 * S


def test_threshold_rate_of_change_and_storm_kinds() -> None:
    rules = parse_rules({"rules": [
        {"id": "slow", "kind": "threshold", "metric": "p50_ms", "op": ">", "value": 20},
        {"id": "fewer", "kind": "rate_of_change", "metric": "received", "direction": "down",
         "factor": 4},
        {"id": "storm", "kind": "connection_storm", "metric": "churn", "min_count": 3},
    ]})  # fmt: skip
    found = run(InjectedFault("delay", 10, 2, 50), InjectedFault("stall", 20, 2),
                InjectedFault("disconnect", 30, 1, 3), rules=rules)  # fmt: skip
    caught = {(a.rule, a.injected) for a in found}
    assert caught == {("slow", ("delay",)), ("slow", ("stall",)), ("fewer", ("stall",)),
                      ("storm", ("disconnect",))}  # fmt: skip
    assert max(a.evidence["p50_ms"] for a in found if a.rule == "slow") > 50


def test_statistical_rules_against_history_and_ewma() -> None:
    rules = parse_rules({"rules": [
        {"id": "vs-history", "kind": "statistical", "metric": "p50_ms", "baseline": "history",
         "z": 6, "min_change": 0.3},
        {"id": "ewma", "kind": "statistical", "metric": "p50_ms", "method": "ewma",
         "baseline": "rolling", "z": 8, "min_change": 1.0},
    ]})  # fmt: skip
    history = [measure(seed=s) for s in (1, 2)]
    slower = run(latency_ms=10.0, seed=3, rules=rules, history=history)
    assert {a.rule for a in slower} == {"vs-history"}  # all of it slow: only history knows
    assert slower[0].duration_s > 30
    same = run(seed=3, rules=rules, history=history)
    assert same == []
    shifted = run(InjectedFault("delay", 20, 5, 20), seed=3, rules=rules, history=history)
    assert {a.rule for a in shifted} == {"vs-history", "ewma"}


def test_field_sets_seen_in_earlier_runs_are_not_drift() -> None:
    rules = parse_rules({"rules": [{"id": "drift", "kind": "schema_drift"}]})
    earlier = measure(faults=(InjectedFault("schema_drift", 5, 30, 0.5),))
    assert run(InjectedFault("schema_drift", 10, 2, 0.5), rules=rules)
    assert run(InjectedFault("schema_drift", 10, 2, 0.5), rules=rules, history=[earlier]) == []


def test_per_connection_stall_names_the_connection() -> None:
    rules = parse_rules(
        {
            "rules": [
                {
                    "id": "c",
                    "kind": "stall",
                    "scope": "connection",
                    "fingerprint": "{rule}:{conn}",
                    "min_silence": 1,
                }
            ]
        }
    )
    frame, _, manifest = synth_run(SyntheticRun(duration=30, connections=4))
    # drop every reply of connection 2 between 10 s and 14 s
    silent = (
        (frame["conn"] == 2)
        & (frame["kind"] == "recv")
        & (frame["intended_ns"] >= T0_NS + 10 * S)
        & (frame["intended_ns"] < T0_NS + 14 * S)
    )
    found = detect_anomalies(metrics(frame.filter(~silent).lazy(), manifest=manifest),
                             rules=rules, fixes=())  # fmt: skip
    assert [a.fingerprint for a in found] == ["c:2"]
    assert found[0].evidence["conn"] == 2


def test_anomaly_json_shape() -> None:
    (anomaly, *_) = run(InjectedFault("stall", 10, 3))
    doc = anomaly.to_dict()
    assert {"rule", "kind", "severity", "start", "end", "fingerprint", "evidence",
            "suggestions"} <= set(doc)  # fmt: skip
    assert doc["start"].endswith("Z")
    assert doc["start"].startswith("2024-01-01T00:00:")
    assert abs(Anomaly.from_dict(doc).start - anomaly.start) < 1000  # ISO keeps microseconds
