"""The GitHub workflows cannot run here: validate them against GitHub's workflow
schema (the copy vendored in check-jsonschema, no network) and check that each
one does the job it is there for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def _validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str]:
    """check-jsonschema's own command line, in-process; (exit status, output)."""
    from check_jsonschema import main

    try:
        main(["--builtin-schema", "vendor.github-workflows", *map(str, paths)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out = capsys.readouterr()
    return code, out.out + out.err


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


def _uses(workflow: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in _steps(workflow) if "uses" in step]


def test_there_are_workflows() -> None:
    assert {p.name for p in FILES} >= {"pr-gate.yml", "nightly-soak.yml", "performance.yml"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_workflow_matches_the_github_schema(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = _validate(capsys, path)
    assert code == 0, output


def test_the_validator_rejects_a_broken_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: true\n    runs_on: linux\n")
    code, output = _validate(capsys, broken)
    assert code != 0
    assert "broken.yml" in output


def test_pr_gate_runs_smoke_slo_compare_and_keeps_reports() -> None:
    workflow = _load("pr-gate.yml")
    runs = _runs(workflow)
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "streambench run scenarios/smoke.yaml" in runs
    assert "streambench slo" in runs
    assert "streambench compare baseline-smoke" in runs
    assert "streambench report" in runs
    assert "bash scripts/test" in runs  # the suite, notebooks (nbval) included, run once
    assert runs.count("pytest") == 0
    assert "actions/upload-artifact" in _uses(workflow)
    assert "actions/cache/restore" in _uses(workflow)


def test_nightly_soak_renders_reports_and_opens_an_issue_on_failure() -> None:
    workflow = _load("nightly-soak.yml")
    assert "schedule" in workflow[True]
    assert "streambench nightly" in _runs(workflow)
    issue_steps = [s for s in _steps(workflow) if s.get("if") == "failure()"]
    assert issue_steps
    assert "issues.create" in issue_steps[0]["with"]["script"]
    assert workflow["permissions"]["issues"] == "write"


def test_performance_job_runs_the_benchmarks() -> None:
    workflow = _load("performance.yml")
    assert "benchmarks/*.py" in _runs(workflow)
    assert "GITHUB_STEP_SUMMARY" in _runs(workflow)
