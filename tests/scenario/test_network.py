"""The network_faults model: what it accepts, and one-line problems for what it does not."""

from __future__ import annotations

import pytest

from streambench.errors import ScenarioError
from streambench.scenario import parse_scenario
from streambench.scenario.network import parse_byte_rate

BASE = "name: t\nload: {rate: 10, duration: 1s}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(BASE + text, file="s.yaml")
    return [p.render("s.yaml") for p in caught.value.problems]


@pytest.mark.parametrize(("text", "rate"), [
    (20000, 20000.0), ("64KB/s", 64000.0), ("1MiB/s", 1048576.0), ("1.5 MB", 1.5e6),
    ("512B/s", 512.0)])
def test_byte_rates(text: object, rate: float) -> None:
    assert parse_byte_rate(text) == rate


def test_network_faults_imply_the_proxy() -> None:
    scenario = parse_scenario(BASE + "network_faults: [{kind: reset, at: 1s}]\n")
    assert scenario.proxied
    assert scenario.target.via is None
    assert parse_scenario(BASE + "target: {via: proxy}\n").proxied
    assert not parse_scenario(BASE).proxied


@pytest.mark.parametrize(("text", "expected"), [
    ("network_faults: [{kind: reset, for: 1s}]",
     "s.yaml:3: network_faults[0]: a reset happens at an instant: give at (and every to "
     "repeat), not for"),
    ("network_faults: [{kind: latency, delay: 1ms, every: 2s}]",
     "s.yaml:3: network_faults[0]: a repeating fault (every) needs for: how long each "
     "window lasts"),
    ("network_faults: [{kind: blackhole, for: 3s, every: 2s}]",
     "s.yaml:3: network_faults[0]: for (3s) is longer than every (2s): windows would "
     "overlap"),
    ("network_faults: [{kind: slicer, size: 4, variation: 4}]",
     "s.yaml:3: network_faults[0]: variation (4) must be smaller than size (4)"),
    ("network_faults: [{kind: latency}]",
     "s.yaml:3: network_faults[0]: a latency fault needs delay or jitter > 0"),
    ("network_faults: [{kind: refuse, share: 0.5}]",
     "s.yaml:3: network_faults[0].share: unknown key 'share'"),
    ("network_faults: [{kind: bandwidth, rate: fast}]",
     "s.yaml:3: network_faults[0].rate: expected a rate in bytes/s such as 20000, 64KB/s or "
     "1MiB/s, got 'fast'"),
    ("network_faults: [{kind: latency, delay: 1ms, direction: sideways}]",
     "s.yaml:3: network_faults[0].direction: expected 'upstream', 'downstream' or 'both', "
     "got 'sideways'"),
    ("target: {via: direct}\nnetwork_faults: [{kind: reset}]",
     "s.yaml:3: target.via: network_faults go through the fault proxy: remove via: direct "
     "(or the network_faults)"),
])
def test_bad_network_faults_are_one_line_each(text: str, expected: str) -> None:
    found = problems(text + "\n")
    assert len(found) == 1
    assert found[0].startswith(expected), found[0]
