"""docs/backends.md: its example scenarios are the files the back-end tests run, and
every YAML fragment in it is valid scenario YAML."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from streambench.scenario.load import parse_scenario
from tests.backends.conftest import REPO

DOC = (REPO / "docs" / "backends.md").read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.DOTALL)
BASE: dict[str, Any] = {"name": "doc", "load": {"rate": 10, "duration": "1s"}}


def test_the_example_scenarios_are_the_files_the_tests_run() -> None:
    whole = [block for block in BLOCKS if re.search(r"^name: ", block, flags=re.M)]
    assert len(whole) == 8
    for block in whole:
        name = re.search(r"^name: (\S+)", block, flags=re.M).group(1)  # type: ignore[union-attr]
        assert (REPO / "scenarios" / f"{name}.yaml").read_text() == block


@pytest.mark.parametrize("block", [b for b in BLOCKS if not re.search(r"^name: ", b,
                                                                        flags=re.M)])
def test_every_fragment_is_valid(block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fragment = yaml.safe_load(block)
    doc = {**BASE, **fragment}
    target = doc.setdefault("target", {"url": "ws://127.0.0.1:1/"})
    target.setdefault("url", "ws://127.0.0.1:1/")
    parse_scenario(yaml.safe_dump(doc), file="docs/backends.md")
