"""The fault plan without sockets: seeded, reproducible, windowed decisions."""

from __future__ import annotations

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from streambench.errors import ConfigError
from streambench.generate.faults.plan import FaultPlan, mutate, retype, uniform
from streambench.scenario.faults import Fault

NS = 1_000_000_000
FAULTS = TypeAdapter(tuple[Fault, ...])


def plan(*faults: dict, seed: int = 1, connections: int = 2, duration_s: float = 10.0
         ) -> FaultPlan:
    return FaultPlan(FAULTS.validate_python(faults), seed=seed, connections=connections,
                     duration_s=duration_s)


def decisions(p: FaultPlan, *, conn: int = 0, n: int = 1000, spacing_ns: int = NS // 100):
    return [p.decide(conn=conn, seq=seq, offset_ns=seq * spacing_ns) for seq in range(1, n + 1)]


def test_uniform_is_a_pure_function_spread_over_0_1():
    draws = [uniform(7, 0, 1, seq) for seq in range(10_000)]
    assert draws == [uniform(7, 0, 1, seq) for seq in range(10_000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(0.5, abs=0.02)
    assert uniform(8, 0, 1, 5) != uniform(7, 0, 1, 5)


def test_probability_is_honoured_and_reproducible_per_seed():
    first = decisions(plan({"kind": "drop", "probability": 0.1}))
    again = decisions(plan({"kind": "drop", "probability": 0.1}))
    other = decisions(plan({"kind": "drop", "probability": 0.1}, seed=2))
    hit = [d is not None for d in first]
    assert hit == [d is not None for d in again]
    assert hit != [d is not None for d in other]
    assert sum(hit) == pytest.approx(100, abs=30)


def test_a_window_limits_a_fault_to_its_intended_times():
    p = plan({"kind": "malformed", "at": "2s", "for": "1s"})
    hits = [seq for seq, d in enumerate(decisions(p), start=1) if d is not None]
    assert hits == list(range(200, 300))  # offsets 2.00 s .. 2.99 s at 10 ms spacing


def test_adding_a_fault_does_not_change_the_draws_of_another():
    alone = decisions(plan({"kind": "drop", "probability": 0.2}))
    together = decisions(plan({"kind": "drop", "probability": 0.2},
                              {"kind": "duplicate", "probability": 0.3}))
    dropped = [d is not None and d.drop for d in alone]
    assert dropped == [d is not None and d.drop for d in together]


def test_delay_with_jitter_stays_in_its_range_and_is_recorded():
    p = plan({"kind": "delay", "delay": "10ms", "jitter": "5ms"})
    delays = [d.delay_ns for d in decisions(p, n=200)]
    assert all(10_000_000 <= d <= 15_000_000 for d in delays)
    assert len(set(delays)) > 100
    first = p.decide(conn=0, seq=1, offset_ns=0)
    assert first.applied[0][0] == "delay"


def test_a_dropped_message_gets_nothing_else():
    p = plan({"kind": "delay", "delay": "1s"}, {"kind": "drop"}, {"kind": "duplicate"})
    d = p.decide(conn=0, seq=1, offset_ns=0)
    assert d.drop
    assert d.applied == (("drop", "message not sent"),)


def test_faults_combine_on_one_message():
    p = plan({"kind": "duplicate", "copies": 2}, {"kind": "reorder", "window": 3},
             {"kind": "malformed"})
    d = p.decide(conn=1, seq=9, offset_ns=0)
    assert (d.copies, d.reorder, d.malformed, d.drop) == (2, 3, True, False)
    assert [kind for kind, _ in d.applied] == ["duplicate", "reorder", "malformed"]


def test_burst_arrivals_merge_into_the_schedule_in_order():
    p = plan({"kind": "burst", "at": "1s", "for": "500ms", "rate": 400}, connections=2)
    base = iter([0, NS, 2 * NS])
    merged = list(p.schedule(base, conn=0))
    assert merged == sorted(merged)
    assert len(merged) == 3 + 100  # 400/s * 0.5 s over 2 connections
    extra = [o for o in merged if NS < o < NS * 3 // 2]
    assert len(extra) == 100  # mid-slot arrivals: 1.00125 s, 1.00625 s, ...
    both = list(p.burst_offsets(0, conn=0)) + list(p.burst_offsets(0, conn=1))
    assert len(both) == 200


def test_disconnect_picks_a_seeded_fraction_of_connections():
    p = plan({"kind": "disconnect", "at": "3s", "fraction": 0.5, "for": "1s"},
             connections=1000)
    picked = [c for c in range(1000) if p.disconnects(c)]
    assert len(picked) == pytest.approx(500, abs=60)
    assert p.disconnects(picked[0]) == [(3 * NS, NS, p.faults[0])]
    everyone = plan({"kind": "disconnect", "at": "1s"}, connections=3)
    assert all(everyone.disconnects(c) for c in range(3))


def test_schema_drift_renames_removes_and_retypes_keeping_order():
    p = plan({"kind": "schema_drift", "rename": {"text": "body"}, "remove": ["user"],
              "retype": {"n": "string", "flag": "int"}})
    d = p.decide(conn=0, seq=1, offset_ns=0)
    data = orjson.dumps({"text": "hi", "user": "ada", "n": 3, "flag": True, "cid": "0-1",
                         "seq": 1})
    assert orjson.loads(mutate(data, d)) == {"body": "hi", "n": "3", "flag": 1, "cid": "0-1",
                                             "seq": 1}
    assert list(orjson.loads(mutate(data, d))) == ["body", "n", "flag", "cid", "seq"]


def test_malformed_is_invalid_json_that_still_carries_the_cid():
    p = plan({"kind": "malformed"})
    out = mutate(b'{"text":"hi","cid":"0-1","seq":1}', p.decide(conn=0, seq=1, offset_ns=0))
    assert b'"cid":"0-1"' in out
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(out)


@pytest.mark.parametrize(("value", "kind", "expected"), [
    (3, "string", "3"), ("x", "string", "x"), ("2.5", "float", 2.5), ("7", "int", 7),
    ("abc", "int", 3), (0, "bool", False), (5, "null", None), (5, "array", [5]),
    ("v", "object", {"value": "v"}),
])
def test_retype(value, kind, expected):
    assert retype(value, kind) == expected


def test_schema_drift_may_not_touch_the_correlation_fields():
    with pytest.raises(ConfigError, match=r"faults\[0\].*'cid'"):
        plan({"kind": "schema_drift", "rename": {"cid": "id"}})


@pytest.mark.parametrize("bad", [
    {"kind": "delay"},  # no delay nor jitter
    {"kind": "drop", "probability": 1.5},
    {"kind": "schema_drift"},
    {"kind": "burst", "at": "1s"},  # no rate
    {"kind": "teleport"},
    {"kind": "drop", "typo": 1},
])
def test_invalid_faults_are_rejected(bad):
    with pytest.raises(ValidationError):
        FAULTS.validate_python([bad])


def test_for_is_read_and_written_by_its_yaml_name():
    (fault,) = FAULTS.validate_python([{"kind": "drop", "at": "1s", "for": "500ms"}])
    assert fault.window_ns(10.0) == (NS, NS * 3 // 2)
    assert FAULTS.dump_python((fault,), mode="json")[0]["for"] == 0.5
