"""``streambench validate``, run in-process through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streambench.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "scenarios").glob("*.yaml"))

BAD = "name: bad one\nload:\n  rat: 5\n  duration: 10 sec\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(argv)
    return status, capsys.readouterr().out


def test_smoke_summary_line(capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    status, out = run(["validate", "scenarios/smoke.yaml"], capsys)
    assert status == 0
    assert out == ("ok  scenarios/smoke.yaml  (smoke: websocket -> embedded, 4 connections, "
                   "200 msg/s for 10s, 2000 messages)\n")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_scenario_is_valid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(["validate", str(path)], capsys)
    assert status == 0, out
    assert out.startswith(f"ok  {path}  (")


def test_invalid_file_lists_every_problem(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    status, out = run(["validate", str(bad)], capsys)
    assert status == 1
    assert out.splitlines() == [
        f"{bad}:1: name: expected letters, digits, '.', '_' or '-' (no spaces), got 'bad one'",
        f"{bad}:3: load.rat: unknown key 'rat'; did you mean 'rate'?",
        f"{bad}:4: load.duration: expected a duration such as 500ms, 30s, 5m, 2h or 1h30m, "
        "got '10 sec'; did you mean 10s?",
    ]


def test_mixed_files_exit_1_and_report_each(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    missing = tmp_path / "missing.yaml"
    status, out = run(["validate", str(REPO / "scenarios/smoke.yaml"), str(bad), str(missing)],
                      capsys)
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("ok  ")
    assert f"{missing}: file not found" in lines


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    status, out = run(["validate", "--json", str(REPO / "scenarios/smoke.yaml"), str(bad)], capsys)
    assert status == 1
    good_result, bad_result = json.loads(out)
    assert good_result["valid"] is True
    assert good_result["problems"] == []
    assert good_result["summary"]["messages"] == 2000
    assert good_result["summary"]["connections"] == 4
    assert bad_result["valid"] is False
    assert bad_result["summary"] is None
    assert {"path": "load.rat", "line": 3,
            "message": "unknown key 'rat'; did you mean 'rate'?"} in bad_result["problems"]


def test_unset_secret_is_a_warning_not_an_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "secret.yaml"
    file.write_text("name: s\ntarget:\n  url: ws://127.0.0.1:8765/echo\n"
                    "  headers: {Authorization: 'Bearer ${SB_TEST_TOKEN}'}\n"
                    "load: {rate: 10, duration: 1m}\n")
    monkeypatch.delenv("SB_TEST_TOKEN", raising=False)
    status, out = run(["validate", str(file)], capsys)
    assert status == 0
    assert out.splitlines()[1] == (f"warning  {file}: target.headers.Authorization: environment "
                                   "variable SB_TEST_TOKEN is not set (needed at run time)")
    monkeypatch.setenv("SB_TEST_TOKEN", "tok-value-xyz")
    status, out = run(["validate", "--json", str(file)], capsys)
    assert status == 0
    assert json.loads(out)[0]["warnings"] == []
    assert "tok-value-xyz" not in out


def test_redaction_rule_naming_no_field_is_a_warning(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "typo.yaml"
    file.write_text("name: t\nload: {rate: 1, duration: 1}\n"
                    "message: {body: {text: '{{sentence}}', user: {id: 1}, items: [{sku: a}]}}\n"
                    "capture:\n  redaction:\n"
                    "    allow: [txt, user.id, cid, items.sku, 'items[].sku']\n")
    status, out = run(["validate", str(file)], capsys)
    assert status == 0
    assert out.splitlines()[1:] == [
        f"warning  {file}: capture.redaction.allow[0]: 'txt' is not a field of message.body"
    ]


def test_staged_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "staged.yaml"
    file.write_text("name: st\nload:\n  connections: 1\n  stages:\n"
                    "    - {duration: 1m, rate: 0, to: 100}\n    - {duration: 30m, rate: 100}\n")
    status, out = run(["validate", str(file)], capsys)
    assert status == 0
    assert out == (f"ok  {file}  (st: websocket -> embedded, 1 connection, 2 stages up to "
                   "100 msg/s over 31m, 183000 messages)\n")
