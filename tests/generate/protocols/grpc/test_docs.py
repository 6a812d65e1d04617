"""The Python example of docs/protocols.md's gRPC section runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[4] / "docs" / "protocols.md"
SECTION = DOC.read_text().split("## gRPC\n", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, flags=re.DOTALL)


def test_the_grpc_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = BLOCKS
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the doc's own example code
    sent, received, *_ = capsys.readouterr().out.split()
    assert sent == received == "50"
