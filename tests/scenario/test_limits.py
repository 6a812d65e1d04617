"""Hostile scenario files: every bound of streambench.limits is a one-line error, fast.

Each case failed before the bounds existed: a traceback, a KeyError at run time,
or a validate that grew without limit (an alias bomb took 5.4 GB).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streambench import limits
from streambench.cli import main
from streambench.errors import ScenarioError
from streambench.scenario import compile_body, load_scenario, parse_scenario
from tests.helpers import wait_for

HEAD = "name: hostile\nload: {rate: 1, duration: 1}\n"


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    status = main(["validate", str(path)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def one_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert "Traceback" not in out
    return lines[0]


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    lines = [HEAD, "x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x-a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)]
    status, out = validate(tmp_path, "\n".join(lines) + "\n", capsys)  # expanded 9**7 before
    assert status == 1
    assert "more than 100,000 values once YAML aliases are expanded" in one_line(out)


@pytest.mark.parametrize("depth", [40, 250, 2000])
def test_a_deeply_nested_body_fails_validate_not_run(depth: int, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    body = "[" * depth + "]" * depth
    status, out = validate(tmp_path, HEAD + f"message: {{body: {{x: {body}}}}}\n", capsys)
    assert status == 1
    line = one_line(out)
    assert "nested" in line
    assert "levels deep" in line


def test_a_body_one_level_under_the_bound_is_fine():
    inner = "[" * (limits.BODY_DEPTH - 1) + "]" * (limits.BODY_DEPTH - 1)
    scenario = parse_scenario(HEAD + f"message: {{body: {{x: {inner}}}}}\n")
    assert compile_body(scenario.message.body, seed=0, pool=1).frame(0, "0-1", 1)


def test_two_placeholders_in_one_string_render_as_text():
    scenario = parse_scenario(HEAD + 'message: {body: {name: "{{first_name}} {{last_name}}"}}\n')
    pool = compile_body(scenario.message.body, seed=1, pool=4)  # was a KeyError at run time
    names = [pool.body(i)["name"] for i in range(4)]
    assert all(len(name.split(" ")) == 2 for name in names)


def test_pool_is_bounded_by_count_and_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    status, out = validate(tmp_path, HEAD + "message: {pool: 1000000000}\n", capsys)
    assert status == 1
    assert "message.pool: expected at most 1,000,000 bodies" in one_line(out)
    big = HEAD + 'message: {pool: 1000, body: {t: "{{chars:1048576}}"}}\n'
    status, out = validate(tmp_path, big, capsys)
    assert "need 1,000 MiB; at most 256 MiB: lower message.pool to 255" in one_line(out)


def test_chars_is_bounded_and_linear(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    status, out = validate(tmp_path, HEAD + 'message: {body: {t: "{{chars:16777216}}"}}\n', capsys)
    assert status == 1
    assert "N must be at most 1048576" in one_line(out)
    pool = compile_body({"t": "{{chars:1048576}}"}, seed=0, pool=2)  # built in one join
    assert len(pool.body(1)["t"]) == 1 << 20


def test_rate_times_duration_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    text = "name: big\nload: {rate: 1.0e+300, duration: 1.0e+300}\n"
    status, out = validate(tmp_path, text, capsys)
    assert status == 1
    assert "Traceback" not in out
    assert "load.rate: expected a number > 0 and <= 10000000" in out
    status, out = validate(tmp_path, "name: big\nload: {rate: 1000000, duration: 600h}\n", capsys)
    assert "schedules 2,160,000,000,000 messages; at most 10,000,000,000" in one_line(out)


def test_dev_zero_is_read_bounded(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(ScenarioError, match="larger than 1 MiB"):
        load_scenario("/dev/zero")
    assert main(["validate", "/dev/zero"]) == 1
    assert "larger than 1 MiB" in one_line(capsys.readouterr().out)


@pytest.mark.parametrize(("text", "field"), [
    ('message: {body: {text: "\\ud800"}}\n', "message.body.text"),
    ('description: "a \\udfff b"\n', "description"),
    ('message: {body: {"\\ud800": 1}}\n', "message.body"),
])
def test_a_lone_surrogate_names_its_field(text: str, field: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]):
    status, out = validate(tmp_path, HEAD + text, capsys)
    assert status == 1
    line = one_line(out)
    assert f" {field}" in line
    assert "lone UTF-16 surrogate" in line


@pytest.mark.parametrize("name", ['a"b', "a\\b", "", "tab\there"])
def test_correlation_field_names_that_break_reply_matching_are_refused(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    status, out = validate(tmp_path, HEAD + f'message: {{cid_field: "{quoted}"}}\n', capsys)
    assert status == 1
    assert "message.cid_field:" in one_line(out)


def test_reconnect_has_a_minimum_delay(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    status, out = validate(tmp_path, HEAD + "target: {reconnect: {initial: 0, max: 0}}\n", capsys)
    assert status == 1
    assert "target.reconnect.initial: expected a duration >= 0.01, got 0" in out
    assert "target.reconnect.max: expected a duration >= 0.01, got 0" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_validate_answers_signals(sig: signal.Signals, tmp_path: Path):
    """A FIFO nobody writes to blocks the read for ever: the signal must end it."""
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "streambench", "validate", str(fifo)]
    # a shell's background job (`.ci/run &`) starts with SIGINT ignored, and the CLI keeps
    # an ignored signal ignored: this child gets the default, as a terminal's command does
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=_default_signals)  # noqa: PLW1509
    try:
        wait_for(lambda: _reading(proc.pid, fifo), what="validate to open the FIFO")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.strip() == "streambench: interrupted"


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _reading(pid: int, fifo: Path) -> bool:
    """True once ``pid`` is blocked opening ``fifo`` (its wchan is the FIFO open)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() in ("fifo_open", "pipe_wait",
                                                          "wait_for_partner")
    except OSError:
        return False
