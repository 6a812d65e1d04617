"""The command line as a user (and CI) calls it: real processes, real stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def streambench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streambench", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env, check=False)


def test_run_json_is_the_contract_ci_scripts_rely_on(tmp_path: Path):
    done = streambench("run", "scenarios/smoke.yaml", "--duration", "1s", "--rate", "100",
                       "--store", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in ("run_id", "sent", "received", "errors", "timeouts", "intended_rate",
                "achieved_rate", "schema_version"):
        assert key in summary
    assert set(summary["latency_ms"]) >= {"p50", "p90", "p95", "p99", "max"}
    assert summary["sent"] == 100
    assert summary["intended_rate"] == 100
    runs = json.loads(streambench("runs", "--store", str(tmp_path), "--json").stdout)
    assert [r["run_id"] for r in runs] == [summary["run_id"]]
    assert runs[0]["scenario"] == "smoke"
    assert runs[0]["status"] == "completed"
    assert set(runs[0]) >= {"run_id", "scenario", "started", "status"}


def test_human_summary_and_overrides(tmp_path: Path):
    done = streambench("run", "scenarios/smoke.yaml", "--duration", "500ms", "--connections", "2",
                       "--rate", "40", "--seed", "9", "--store", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "sent 20  received 20" in done.stdout
    assert "latency ms (from intended send)" in done.stdout
    assert "schedule lag ms" in done.stdout


def test_the_store_comes_from_the_environment_when_not_given(tmp_path: Path):
    env = {**__import__("os").environ, "STREAMBENCH_STORE": str(tmp_path / "env-store")}
    done = streambench("run", "scenarios/smoke.yaml", "--duration", "300ms", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "env-store" / "runs").glob("*.json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope.yaml"], "nope.yaml"),
        (["run", "scenarios/smoke.yaml", "--target", "ws://127.0.0.1:1/x"], "unreachable"),
        (["runs", "--store", "/proc/forbidden/store"], None),
    ],
)
def test_bad_input_is_one_line_never_a_traceback(args: list[str], message: str | None,
                                                 tmp_path: Path):
    if "--store" not in args:
        args = [*args, "--store", str(tmp_path)]
    done = streambench(*args)
    assert "Traceback" not in done.stderr
    if message is not None:
        assert done.returncode == 2
        assert message in done.stderr
        assert done.stderr.startswith("streambench: error:")


def test_logs_as_json_lines_carry_the_run_id(tmp_path: Path):
    done = streambench("--log-format", "json", "--log-level", "info", "run",
                       "scenarios/smoke.yaml", "--duration", "300ms", "--store", str(tmp_path),
                       "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    run_id = json.loads(done.stdout)["run_id"]
    assert any(line.get("run_id") == run_id and line["level"] == "info" for line in lines)


def test_doctor_reports_every_check(tmp_path: Path):
    done = streambench("doctor", "--store", str(tmp_path), "--json")
    report = json.loads(done.stdout)
    names = {c["name"] for c in report["checks"]}
    assert {"python", "store writable", "open-file limit", "mosquitto (MQTT tests)"} <= names
    assert report["ok"] is (done.returncode == 0)


def test_a_lost_connection_is_logged_with_run_id_and_connection(tmp_path: Path):
    from tests.helpers import write_scenario

    path = write_scenario(tmp_path / "drops.yaml",
                          target={"url": "embedded", "server": {"disconnect_every": "400ms"},
                                  "reconnect": {"initial": "20ms"}},
                          load={"connections": 2, "rate": 50, "duration": "1s"})
    done = streambench("--log-format", "json", "--log-level", "info", "run", str(path),
                       "--store", str(tmp_path / "store"), "--json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    lost = [json.loads(line) for line in done.stderr.splitlines()
            if line.startswith("{") and "connection lost" in line]
    assert lost
    assert all(line["run_id"] == run_id and line["conn"] in (0, 1) for line in lost)
