"""Open-model schedules: pure, seeded, exact in count and shape."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streambench.generate.engine.schedule import NS, _solve_in_segment, expected_count, schedule
from streambench.scenario.model import Load


def all_offsets(load: Load, seed: int = 0) -> list[int]:
    return sorted(itertools.chain.from_iterable(
        schedule(load, seed=seed, conn=c) for c in range(load.connections)))


def test_constant_rate_sends_rate_times_duration_evenly_spaced():
    load = Load(connections=4, rate=200, duration=2)
    offsets = all_offsets(load)
    assert len(offsets) == 400
    gaps = {b - a for a, b in itertools.pairwise(offsets)}
    assert max(gaps) - min(gaps) <= 1  # 5 ms apart, to the nanosecond (rounding)
    assert offsets[0] == pytest.approx(0.0025 * NS)  # middle of the first slot
    assert offsets[-1] < 2 * NS


@pytest.mark.parametrize("rate", [3, 200, 9_000.5, 123_457])
def test_a_constant_stage_sends_at_the_same_nanosecond_as_the_general_solver(rate: float):
    load = Load(connections=3, stages=[{"duration": 0.5, "rate": 10},
                                       {"duration": 1.5, "rate": rate}])
    for conn in range(3):
        expected, index, done = [], conn, 0.0
        for start, duration, r0, r1 in ((0.0, 0.5, 10.0, 10.0), (0.5, 1.5, rate, rate)):
            while index + 0.5 <= done + duration * r0:
                offset = _solve_in_segment(index + 0.5 - done, duration, r0, r1)
                expected.append(round((start + offset) * NS))
                index += 3
            done += duration * r0
        assert list(schedule(load, seed=0, conn=conn)) == expected


def test_connections_share_the_global_schedule_round_robin():
    load = Load(connections=3, rate=30, duration=1)
    per_conn = [list(schedule(load, seed=0, conn=c)) for c in range(3)]
    assert [len(p) for p in per_conn] == [10, 10, 10]
    merged = sorted((t, c) for c, offsets in enumerate(per_conn) for t in offsets)
    assert [c for _, c in merged] == [0, 1, 2] * 10


def test_stages_step_and_ramp_follow_the_profile():
    load = Load(connections=2, stages=[{"duration": 1, "rate": 100},
                                       {"duration": 2, "rate": 0, "to": 200}])
    offsets = all_offsets(load)
    assert len(offsets) == round(expected_count(load.profile())) == 100 + 200
    first_stage = [t for t in offsets if t < NS]
    assert len(first_stage) == 100
    # a linear ramp from 0 to 200/s: the second half of the ramp holds 3/4 of its messages
    ramp = [t for t in offsets if t >= NS]
    assert sum(t >= 2 * NS for t in ramp) == 150


def test_schedules_are_monotonic_per_connection():
    load = Load(connections=5, stages=[{"duration": 1, "rate": 500, "to": 50}],
                arrival="poisson")
    for conn in range(5):
        offsets = list(schedule(load, seed=7, conn=conn))
        assert offsets == sorted(offsets)


def test_poisson_is_seeded_and_has_the_right_mean_rate():
    load = Load(connections=4, rate=1000, duration=10, arrival="poisson")
    a, b = all_offsets(load, seed=1), all_offsets(load, seed=1)
    assert a == b
    assert all_offsets(load, seed=2) != a
    assert len(a) == pytest.approx(10_000, rel=0.05)


def test_connection_index_outside_the_load_is_refused():
    with pytest.raises(ValueError, match="outside"):
        list(schedule(Load(connections=2, rate=1, duration=1), seed=0, conn=2))


@settings(max_examples=60, deadline=None)
@given(
    connections=st.integers(1, 16),
    rates=st.lists(st.floats(0, 2000), min_size=1, max_size=4),
    durations=st.lists(st.floats(0.05, 3), min_size=4, max_size=4),
    ramp=st.booleans(),
)
def test_any_profile_yields_its_expected_count_within_the_run(connections, rates, durations,
                                                              ramp):
    stages = [{"duration": d, "rate": r, "to": (rates[i - 1] if ramp and i else None)}
              for i, (r, d) in enumerate(zip(rates, durations, strict=False))]
    load = Load(connections=connections, stages=stages)
    offsets = all_offsets(load)
    expected = expected_count(load.profile())
    assert abs(len(offsets) - expected) <= 1
    assert all(0 <= t <= load.total_duration * NS for t in offsets)
