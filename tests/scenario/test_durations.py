"""Durations: ``500ms``, ``30s``, ``5m``, ``2h``, ``1h30m`` or a bare number of seconds."""

from __future__ import annotations

import pytest

from streambench.scenario import parse_duration, parse_scenario


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("500ms", 0.5), ("1.5ms", 0.0015), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0),
        ("1.5h", 5400.0), ("1h30m", 5400.0), ("2m30s", 150.0), ("1s500ms", 1.5),
        ("1h0m5s", 3605.0), (" 10s ", 10.0), ("10", 10.0), ("0", 0.0), (3, 3.0), (0.25, 0.25),
    ],
)
def test_valid_durations(written: object, seconds: float) -> None:
    assert parse_duration(written) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("10 sec", "did you mean 10s?"),
        ("5 minutes", "did you mean 5m?"),
        ("2 hours", "did you mean 2h?"),
        ("100 msec", "did you mean 100ms?"),
        ("10x", "got '10x'"),
        ("", "got ''"),
        ("1m1h", "got '1m1h'"),
        ("-5s", "got '-5s'"),
        (-1, "expected a duration >= 0, got -1"),
        (float("inf"), "expected a duration >= 0"),
        (True, "got True"),
        (None, "got None"),
    ],
)
def test_invalid_durations(written: object, fragment: str) -> None:
    with pytest.raises(ValueError, match="expected a duration") as caught:
        parse_duration(written)
    assert fragment in str(caught.value)


def test_every_duration_field_accepts_the_syntax() -> None:
    scenario = parse_scenario(
        "name: d\n"
        "target: {connect_timeout: 250ms, reconnect: {initial: 100ms, max: 1m}}\n"
        "load: {rate: 1, duration: 1h30m, timeout: 2s, heartbeat: 20s}\n"
        "capture: {flush_every: 500ms}\n"
    )
    assert scenario.target.connect_timeout == 0.25
    assert scenario.target.reconnect.max == 60.0
    assert scenario.load.duration == 5400.0
    assert scenario.load.total_duration == 5400.0
    assert scenario.load.heartbeat == 20.0
    assert scenario.capture.flush_every == 0.5


def test_stage_durations_add_up() -> None:
    scenario = parse_scenario(
        "name: d\nload:\n  stages:\n    - {duration: 30s, rate: 1, to: 10}\n"
        "    - {duration: 2m, rate: 10}\n"
    )
    assert scenario.load.total_duration == 150.0
