"""The Python examples of docs/reports.md run as written.

Examples that need a run in ./data, a scenario file of the checkout, or start
a kernel (render_report) are shown in the docs and exercised by the other
report tests instead; every other ```python block is executed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
NEEDS_MORE = ("render_report(", "scenarios/", ".attach(", "await ")  # await: a notebook cell
RUNNABLE = [b for b in BLOCKS if not any(marker in b for marker in NEEDS_MORE)]


def test_the_docs_have_runnable_examples() -> None:
    assert len(RUNNABLE) >= 2


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.strip().splitlines()[-1][:40])
def test_example_runs(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMBENCH_STORE", str(tmp_path / "store"))
    exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the doc's own example code
