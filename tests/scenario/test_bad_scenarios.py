"""Every bad scenario is reported with its field path, line and a plain-words message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from streambench.errors import ScenarioError
from streambench.scenario import load_scenario, parse_scenario

GOOD_HEAD = "name: t\ntarget: {protocol: websocket, url: embedded}\n"

# (id, yaml, field path, line, message fragment)
CASES = [
    ("unknown-key-suggestion", GOOD_HEAD + "load: {rat: 5, rate: 1, duration: 1s}\n",
     "load.rat", 3, "unknown key 'rat'; did you mean 'rate'?"),
    ("unknown-nested-key", "name: t\ntarget:\n  reconect: {}\nload: {rate: 1, duration: 1}\n",
     "target.reconect", 3, "did you mean 'reconnect'?"),
    ("key-one-level-too-high", "name: t\nrate: 5\nload: {rate: 1, duration: 1}\n",
     "rate", 2, "it belongs under 'load' (load.rate)"),
    ("bad-duration", GOOD_HEAD + "load:\n  rate: 10\n  duration: 10 sec\n",
     "load.duration", 5, "got '10 sec'; did you mean 10s?"),
    ("negative-rate", GOOD_HEAD + "load:\n  rate: -5\n  duration: 1s\n",
     "load.rate", 4, "expected a number > 0 and <= 10000000, got -5"),
    ("rate-not-a-number", GOOD_HEAD + "load:\n  rate: fast\n  duration: 1s\n",
     "load.rate", 4, "expected a number > 0 and <= 10000000, got 'fast'"),
    ("rate-and-stages", GOOD_HEAD + "load:\n  rate: 5\n  duration: 1s\n"
     "  stages: [{duration: 1s, rate: 1}]\n",
     "load", 3, "give either rate and duration, or stages, not both"),
    ("rate-without-duration", GOOD_HEAD + "load: {rate: 5}\n",
     "load", 3, "give rate and duration (or a list of stages)"),
    ("no-load", GOOD_HEAD,
     "load", None, "required key 'load' is missing"),
    ("no-name", "load: {rate: 1, duration: 1}\n",
     "name", None, "required key 'name' is missing"),
    ("empty-stages", GOOD_HEAD + "load: {stages: []}\n",
     "load", 3, "stages must list at least one stage"),
    ("bad-stage-rate", GOOD_HEAD + "load:\n  stages:\n    - {duration: 1s, rate: 1}\n"
     "    - {duration: 1s, rate: -1}\n",
     "load.stages[1].rate", 6, "expected a number between 0 and 10000000, got -1"),
    ("zero-stage-duration", GOOD_HEAD + "load:\n  stages:\n    - duration: 0s\n      rate: 1\n",
     "load.stages[0].duration", 5, "expected a duration > 0"),
    ("unknown-protocol", "name: t\ntarget:\n  protocol: wss\nload: {rate: 1, duration: 1}\n",
     "target.protocol", 3, "unknown protocol 'wss'; expected one of 'websocket', 'mqtt', "
     "'http', 'sse', 'grpc'; did you mean 'websocket'?"),
    ("probability-over-1", "name: t\ntarget:\n  server: {drop_rate: 1.5}\n"
     "load: {rate: 1, duration: 1}\n",
     "target.server.drop_rate", 3, "expected a number between 0 and 1, got 1.5"),
    ("slo-error-rate-over-1", GOOD_HEAD + "load: {rate: 1, duration: 1}\nslo:\n  error_rate: 2\n",
     "slo.error_rate", 5, "between 0 and 1, got 2"),
    ("zero-connections", GOOD_HEAD + "load: {connections: 0, rate: 1, duration: 1}\n",
     "load.connections", 3, "expected a whole number between 1 and 1000000, got 0"),
    ("infinite-threshold", GOOD_HEAD + "load: {rate: 1, duration: 1}\nslo: {p99_ms: .inf}\n",
     "slo.p99_ms", 4, "expected a finite number"),
    ("retention-words", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "capture: {retention_days: two weeks}\n",
     "capture.retention_days", 4, "expected a whole number >= 1, got 'two weeks'"),
    ("mqtt-on-the-embedded-target", "name: t\ntarget:\n  protocol: mqtt\n  url: embedded\n"
     "load: {rate: 1, duration: 1}\n",
     "target.url", 4, "not MQTT: give a broker URL"),
    ("slo-window-two-metrics", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "slo:\n  windows: [{p95_ms: 5, p99_ms: 9}]\n",
     "slo.windows[0]", 5, "each window needs exactly one of"),
    # issue 16 items 16 and 19: slo.windows of the wrong shape, NaN in a window
    ("slo-windows-not-a-list", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "slo:\n  windows: 5\n",
     "slo.windows", 5, "expected a list, got 5"),
    ("slo-windows-a-mapping", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "slo:\n  windows: {a: 1}\n",
     "slo.windows", 5, "expected a list, got a mapping"),
    ("slo-window-not-a-mapping", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "slo:\n  windows: [[1, 2]]\n",
     "slo.windows[0]", 5, "expected a mapping (key: value), got a list"),
    ("slo-window-nan-limit", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "slo:\n  windows: [{p99_ms: .nan}]\n",
     "slo.windows[0]", 5, "p99_ms: expected a number >= 0, got nan"),
    ("slo-window-nan-window", GOOD_HEAD + "load: {rate: 1, duration: 1}\n"
     "slo:\n  windows: [{p99_ms: 5, window: .nan}]\n",
     "slo.windows[0].window", 5, "expected a duration >= 0, got nan"),
    ("name-with-space", "name: my test\nload: {rate: 1, duration: 1}\n",
     "name", 1, "no spaces"),
    ("url-does-not-fit-protocol", "name: t\ntarget:\n  protocol: websocket\n"
     "  url: http://127.0.0.1:8765/\nload: {rate: 1, duration: 1}\n",
     "target.url", 4, "does not fit protocol websocket"),
    ("malformed-secret", "name: t\ntarget:\n  headers:\n    Authorization: Bearer ${API-TOKEN}\n"
     "load: {rate: 1, duration: 1}\n",
     "target.headers.Authorization", 4, "malformed reference ${API-TOKEN}"),
    ("unknown-placeholder", GOOD_HEAD + "load: {rate: 1, duration: 1}\nmessage:\n  body:\n"
     "    user:\n      id: '{{usr_id}}'\n",
     "message.body.user.id", 7, "unknown placeholder {{usr_id}}; did you mean {{user_id}}?"),
    ("placeholder-in-list", GOOD_HEAD + "load: {rate: 1, duration: 1}\nmessage:\n  body:\n"
     "    tags: [ok, 'n={{int:9:1}}']\n",
     "message.body.tags[1]", 6, "LO must be <= HI"),
    ("cid-collision", GOOD_HEAD + "load: {rate: 1, duration: 1}\nmessage:\n  body:\n"
     "    cid: mine\n",
     "message.body.cid", 6, "key 'cid' is reserved"),
    ("custom-seq-collision", GOOD_HEAD + "load: {rate: 1, duration: 1}\nmessage:\n"
     "  seq_field: n\n  body: {n: 1}\n",
     "message.body.n", 6, "key 'n' is reserved"),
    ("body-not-json", GOOD_HEAD + "load: {rate: 1, duration: 1}\nmessage:\n  body:\n"
     "    big: 100000000000000000000000\n",
     "message.body.big", 6, "too large for JSON"),
    ("fault-unknown-kind", GOOD_HEAD + "load: {rate: 1, duration: 1}\nfaults:\n"
     "  - {kind: dorp, probability: 0.1}\n",
     "faults[0].kind", 5, "unknown kind 'dorp'; expected one of 'delay', 'drop'"),
    ("fault-key-typo", GOOD_HEAD + "load: {rate: 1, duration: 1}\nfaults:\n"
     "  - {kind: drop, probability: 0.1}\n  - kind: delay\n    probabilty: 0.1\n",
     "faults[1].probabilty", 7, "did you mean 'probability'?"),
    ("fault-probability-over-1", GOOD_HEAD + "load: {rate: 1, duration: 1}\nfaults:\n"
     "  - {kind: drop, probability: 1.5}\n",
     "faults[0].probability", 5, "expected a number between 0 and 1, got 1.5"),
    ("yaml-boolean-key", GOOD_HEAD + "load: {rate: 1, duration: 1}\nmessage:\n  body:\n"
     "    on: 1\n",
     "message.body.true", 5, "YAML reads on/off/yes/no as true/false; quote it"),
    ("number-key", "name: t\n1: x\nload: {rate: 1, duration: 1}\n",
     "1", 2, "key 1 must be text"),
    ("unsafe-yaml-tag", "name: !!python/object:os.system t\nload: {rate: 1, duration: 1}\n",
     "", 1, "YAML error: could not determine a constructor"),
    ("duplicate-key", "name: a\nname: b\nload: {rate: 1, duration: 1}\n",
     "name", 2, "key 'name' appears twice (first on line 1)"),
    ("yaml-syntax-error", "name: t\nload: {rate: 1\n",
     "", 3, "YAML syntax error"),
    ("yaml-bad-indent", "name: t\nload:\n  rate: 1\n duration: 1\n",
     "", 4, "YAML syntax error"),
    ("not-a-mapping", "- name: t\n- load: {}\n",
     "", 1, "expected a mapping of keys (name, target, load, ...) at top level, got a list"),
    ("scalar-document", "just text\n",
     "", 1, "got 'just text'"),
    ("empty-file", "",
     "", None, "the file is empty"),
]


@pytest.mark.parametrize(("text", "path", "line", "fragment"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_scenario_is_reported(tmp_path: Path, text: str, path: str, line: int | None,
                                  fragment: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    error = caught.value
    assert error.file == str(file)
    matching = [p for p in error.problems if p.path == path and fragment in p.message]
    assert matching, f"no problem at {path!r} with {fragment!r} in {error.problems}"
    assert matching[0].line == line
    assert "\n" not in matching[0].message


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


def test_binary_file_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "bin.yaml"
    file.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(file)


def test_every_problem_is_listed_in_line_order() -> None:
    text = textwrap.dedent("""\
        name: my test
        target:
          protocol: wss
          server: {error_rate: 3}
        load:
          connections: -1
          rate: fast
          duration: 10 sec
        message:
          body: {cid: 1, who: "{{nmae}}"}
        """)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, file="multi.yaml")
    problems = caught.value.problems
    assert [(p.path, p.line) for p in problems] == [
        ("name", 1),
        ("target.protocol", 3),  # an unknown protocol: its other keys cannot be judged
        ("load.connections", 6),
        ("load.rate", 7),
        ("load.duration", 8),
        ("message.body.cid", 10),
        ("message.body.who", 10),
    ]
    rendered = str(caught.value).splitlines()
    assert rendered[0] == "multi.yaml: 7 problems"
    assert rendered[2] == ("  multi.yaml:3: target.protocol: unknown protocol 'wss'; expected one "
                           "of 'websocket', 'mqtt', 'http', 'sse', 'grpc'; did you mean "
                           "'websocket'?")


def test_credential_values_are_not_echoed() -> None:
    text = "name: t\ntarget: {password: 123456, headers: {X-Key: 987654}}\n" \
        "load: {rate: 1, duration: 1}\n"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    assert "123456" not in str(caught.value)
    assert "987654" not in str(caught.value)
    assert "<redacted>" in str(caught.value)


def test_top_level_x_keys_hold_anchors_and_are_ignored() -> None:
    scenario = parse_scenario(textwrap.dedent("""\
        x-ramp: &ramp {duration: 30s, rate: 10, to: 100}
        name: anchors
        load:
          stages:
            - *ramp
            - {<<: *ramp, rate: 100, to: 0}
        """))
    assert scenario.load.stages is not None
    assert [(s.rate, s.to) for s in scenario.load.stages] == [(10, 100), (100, 0)]
