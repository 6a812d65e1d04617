"""The self-contained Python examples of docs/analysis.md run as written.

Examples that need a run in ./data, a webhook, a mail server or names defined by the text
around them are shown in the docs and exercised by the other analysis tests;
every other ```python block is executed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysis.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
NEEDS_MORE = ('Store("./data")', "hooks.example", "mail.example", "score_detections(anomalies")
RUNNABLE = [b for b in BLOCKS if not any(marker in b for marker in NEEDS_MORE)]


def test_the_docs_have_runnable_examples() -> None:
    assert len(RUNNABLE) >= 1


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.strip().splitlines()[-1][:40])
def test_example_runs(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMBENCH_STORE", str(tmp_path / "store"))
    exec(compile(block, str(DOC), "exec"), {})  # noqa: S102 - the doc's own example code
