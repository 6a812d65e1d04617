"""The docs cover every key of the scenario model; docs/scenarios.md every placeholder.

docs/scenarios.md is the reference; keys owned by a protocol or by fault
injection may be documented in their own page under docs/ instead.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from streambench.scenario import PLACEHOLDERS, Scenario

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = (DOCS / "scenarios.md").read_text()
ALL_DOCS = "\n".join(page.read_text() for page in sorted(DOCS.glob("*.md")))


# Written in YAML as {p95_ms: 50, window: 10s}: the metric's name is the key
NOT_YAML_KEYS = {"slo.windows.metric", "slo.windows.limit"}


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if f"{prefix}{name}" in NOT_YAML_KEYS:
            continue
        keys.append(f"{prefix}{info.alias or name}")
        stack = [info.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                keys += model_keys(annotation, f"{prefix}{name}.")
            stack += typing.get_args(annotation)
    return keys


@pytest.mark.parametrize("key", sorted(set(model_keys(Scenario))))
def test_every_key_is_documented(key: str) -> None:
    leaf = key.rsplit(".", 1)[-1]
    assert f"`{leaf}`" in ALL_DOCS or f".{leaf}`" in ALL_DOCS, f"{key} is not in docs/"


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDERS))
def test_every_placeholder_is_documented(placeholder: str) -> None:
    assert "{{" + placeholder + "}}" in DOC
