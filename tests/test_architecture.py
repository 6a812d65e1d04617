"""The layering DESIGN.md draws, checked on the source: data flows one way.

* no module imports another module's private name (``from x import _y``);
* the engine (``streambench.generate``) never imports analysis or reports: the
  summary a user sees is computed by :mod:`streambench.api` from the store;
* capture and scenario (the contracts) import nothing above them.

Each package's ``commands`` module is the CLI's, a layer above all of them
(it parses arguments, calls the library and prints), so it is not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streambench"
# package -> packages it must never import (at module level or inside a function)
FORBIDDEN = {
    "streambench.generate": ("streambench.analyze", "streambench.report"),
    "streambench.capture": ("streambench.generate", "streambench.analyze", "streambench.report"),
    "streambench.scenario": ("streambench.generate", "streambench.analyze", "streambench.report",
                             "streambench.capture"),
}


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text(), filename=str(path))


def imports(tree: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    """``(module, names, line)`` of every import, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno


ALL = list(modules())
LAYERED = [(name, tree) for name, tree in ALL if not name.endswith(".commands")]


@pytest.mark.parametrize(("name", "tree"), ALL, ids=[name for name, _ in ALL])
def test_no_private_name_crosses_a_module(name: str, tree: ast.Module) -> None:
    crossing = [f"line {line}: from {module} import {n}" for module, names, line in imports(tree)
                if module.startswith("streambench") and module != name
                for n in names if n.startswith("_") and not n.startswith("__")]
    assert crossing == []


@pytest.mark.parametrize(("name", "tree"), LAYERED, ids=[name for name, _ in LAYERED])
def test_layers_do_not_loop(name: str, tree: ast.Module) -> None:
    banned = next((b for package, b in FORBIDDEN.items()
                   if name == package or name.startswith(package + ".")), ())
    found = [f"line {line}: {module}" for module, _, line in imports(tree)
             if any(module == b or module.startswith(b + ".") for b in banned)]
    assert found == []
