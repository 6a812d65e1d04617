"""The shipped notebooks as files: committed clean, parameterised, public API only.

Executing them is nbval's job (``pytest --nbval-lax notebooks/``) and the
report tests'; this checks what a reviewer would check by eye.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

import streambench
from streambench.report.execute import NOTEBOOKS, notebooks_dir

PATHS = sorted(notebooks_dir().glob("*.ipynb"))


def _code(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_report_notebook_is_shipped() -> None:
    assert {p.stem for p in PATHS} == set(NOTEBOOKS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == []
            assert cell.execution_count is None
    assert "widgets" not in notebook.metadata


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_one_parameters_cell_with_store_and_run_defaulting_to_none(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defaults = {node.targets[0].id: ast.literal_eval(node.value)  # type: ignore[attr-defined]
                for node in ast.parse(tagged[0].source).body}  # fmt: skip
    assert defaults["store"] is None
    assert defaults["run_id"] is None


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_uses_only_the_top_level_public_api(path: Path) -> None:
    source = "\n".join(_code(path))
    imported = {alias.name for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names} | {node.module for node in ast.walk(ast.parse(source))
                                            if isinstance(node, ast.ImportFrom)}  # fmt: skip
    assert not {name for name in imported if name and name.startswith("streambench.")}
    used = set(re.findall(r"\bsb\.([A-Za-z_]\w*)", source))
    missing = used - set(streambench.__all__)
    assert not missing, f"not exported by streambench: {sorted(missing)}"
