"""The CLI's --rate/--connections/--duration/--target/--seed on a loaded scenario."""

from __future__ import annotations

import pytest

from streambench.errors import ConfigError
from streambench.scenario import parse_scenario, with_overrides

CONSTANT = parse_scenario("name: c\nload: {connections: 2, rate: 100, duration: 10s}\n")
STAGED = parse_scenario(
    "name: s\nload:\n  stages:\n"
    "    - {duration: 10s, rate: 0, to: 100}\n"
    "    - {duration: 30s, rate: 250}\n"
    "    - {duration: 20s, rate: 100, to: 0}\n"
)


def test_no_overrides_is_the_same_scenario() -> None:
    assert with_overrides(CONSTANT) == CONSTANT


def test_constant_load_values_are_replaced() -> None:
    changed = with_overrides(CONSTANT, rate=50, duration=3, connections=9, seed=4,
                             target="ws://127.0.0.1:9000/x")
    assert (changed.load.rate, changed.load.duration, changed.load.connections) == (50, 3, 9)
    assert changed.seed == 4
    assert changed.target.url == "ws://127.0.0.1:9000/x"
    assert CONSTANT.load.rate == 100  # the original is frozen and untouched


def test_rate_scales_stages_so_the_peak_is_the_given_rate() -> None:
    stages = with_overrides(STAGED, rate=500).load.stages
    assert stages is not None
    assert [(s.rate, s.to) for s in stages] == [(0, 200), (500, None), (200, 0)]
    assert [s.duration for s in stages] == [10, 30, 20]


def test_duration_stretches_stages_to_the_given_total() -> None:
    changed = with_overrides(STAGED, duration=120)
    assert changed.load.stages is not None
    assert [s.duration for s in changed.load.stages] == [20, 60, 40]
    assert changed.load.total_duration == pytest.approx(120)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"rate": 0}, "--rate: expected a number > 0, got 0"),
        ({"rate": -1.5}, "--rate: expected a number > 0"),
        ({"duration": 0}, "--duration: expected a number > 0"),
        ({"connections": 0}, "--connections: expected a whole number >= 1, got 0"),
        ({"connections": 2.5}, "--connections: expected a whole number >= 1"),
        ({"target": "http://127.0.0.1:1/"}, "target.url: url 'http://127.0.0.1:1/' does not fit"),
        ({"target": "127.0.0.1:8765"}, "does not fit protocol websocket"),
    ],
)
def test_impossible_overrides(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        with_overrides(CONSTANT, **overrides)  # type: ignore[arg-type]
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_rate_cannot_scale_an_all_zero_profile() -> None:
    idle = parse_scenario("name: z\nload: {stages: [{duration: 1s, rate: 0}]}\n")
    with pytest.raises(ConfigError, match="every stage has rate 0"):
        with_overrides(idle, rate=10)
