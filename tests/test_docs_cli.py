"""docs/cli.md is generated from the parser; this keeps it true."""

from __future__ import annotations

from pathlib import Path

from streambench.cli_doc import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_is_current():
    assert DOC.read_text() == render(), (
        "docs/cli.md is stale: run `python -m streambench.cli_doc > docs/cli.md`")
