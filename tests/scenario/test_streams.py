"""The ``stream`` section and ``as: push`` rules: what is valid, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from streambench.errors import ScenarioError
from streambench.scenario.load import parse_scenario
from streambench.scenario.streams import PushStream
from tests.scenario.test_validate_cli import REPO, run

LOAD = "load: {rate: 10, duration: 1s}\n"


def problems(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("name: s\n" + LOAD + text, file="s.yaml")
    return str(info.value)


def test_a_stream_over_sse_reads_its_events() -> None:
    sc = parse_scenario("name: s\n" + LOAD + "target: {protocol: sse, url: http://h/t}\n"
                        "stream: {timestamp: data.ts, timestamp_format: iso8601, "
                        "sequence: data.seq}\n")
    assert sc.stream == PushStream(timestamp="data.ts", timestamp_format="iso8601",
                                   sequence="data.seq")


def test_a_push_rule_or_a_stream_message_gives_websocket_pushes_to_read() -> None:
    rule = ("replies: {rules: [{name: tick, match: {type: tick}, as: push, id: sub}]}\n"
            "stream: {sequence: n}\n")
    assert parse_scenario("name: s\n" + LOAD + rule).replies.rules[0].as_ == "push"
    opened = "message: {expect: stream}\nstream: {sequence: n}\n"
    assert parse_scenario("name: s\n" + LOAD + opened).stream.sequence == "n"


@pytest.mark.parametrize(("text", "where", "what"), [
    ("stream: {timestamp: ts}\n", "stream.timestamp_format", "epoch_ms"),
    ("stream: {timestamp_format: epoch_s}\n", "stream.timestamp", "needs timestamp"),
    ("stream: {timestamp: ts, timestamp_format: epoch_min}\n", "stream.timestamp_format",
     "iso8601"),
    ("stream: {sequence: 'a..b'}\n", "stream.sequence", "bad path"),
    ("stream: {sequence: seq}\n", "stream", "no pushes to read"),
    ("target: {protocol: http, url: http://h/x}\nstream: {sequence: seq}\n", "stream",
     "http answers requests"),
    ("stream: {sequence: seq, every: 1s}\n", "stream.every", ""),
])
def test_stream_mistakes_name_the_field(text: str, where: str, what: str) -> None:
    found = problems(text)
    assert where in found
    assert what in found


def test_validate_says_an_sse_scenario_listens(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    status, out = run(["validate", str(Path("scenarios") / "sse_ticker.yaml")], capsys)
    assert status == 0
    assert out == ("ok  scenarios/sse_ticker.yaml  (sse_ticker: sse -> "
                   "http://127.0.0.1:8002/ticks, 2 streams listened to for 10s)\n")
