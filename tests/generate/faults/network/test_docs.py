"""docs/network-faults.md: its Python example runs as written, its YAML is valid, and
scenarios/network.yaml (the page's `streambench run` example) validates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from streambench.scenario import Scenario, load_scenario
from streambench.scenario.network import NETWORK_FAULT_KINDS

ROOT = Path(__file__).resolve().parents[4]
DOC = ROOT / "docs" / "network-faults.md"
TEXT = DOC.read_text()
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
YAML = re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL)


def test_the_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(PYTHON) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON[0], str(DOC), "exec"), {})  # noqa: S102 - the doc's own example code


@pytest.mark.parametrize("block", YAML)
def test_the_yaml_examples_are_valid_scenarios(block: str) -> None:
    assert Scenario.model_validate(yaml.safe_load(block)).proxied


def test_the_example_scenario_has_every_kind() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "network.yaml")
    assert sorted(f.kind for f in scenario.network_faults) == sorted(NETWORK_FAULT_KINDS)


@pytest.mark.parametrize("kind", NETWORK_FAULT_KINDS)
def test_every_kind_is_documented(kind: str) -> None:
    assert f"| `{kind}` |" in TEXT
