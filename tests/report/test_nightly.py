"""`streambench nightly`: every recent run's report plus an overview, and an index page.

The real notebooks are executed by nbval and the render tests; here stand-in
notebooks (``$STREAMBENCH_NOTEBOOKS``) keep the test about the nightly logic:
which runs, which files, what the index says, what happens when one fails.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from streambench.capture.store import Store
from streambench.cli import main


def _notebook(path: Path, body: str) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("run_id = None\nstore = None\nsince_hours = None",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])  # fmt: skip
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, path)


def _manifest(store: Store, run_id: str, started: datetime) -> None:
    store.write_manifest({"run_id": run_id, "status": "completed",
                          "started": started.isoformat().replace("+00:00", "Z"),
                          "scenario": {"name": "demo", "load": {"duration": 1.0}}})  # fmt: skip


def test_nightly_renders_recent_runs_and_lists_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "nightly.ipynb", "print('overview of', store)")
    _notebook(books / "scenario_report.ipynb",
              "assert run_id != 'bad-run', 'cannot read bad-run'\nprint('report of', run_id)")
    monkeypatch.setenv("STREAMBENCH_NOTEBOOKS", str(books))
    store = Store(tmp_path / "store")
    now = datetime.now(UTC)
    _manifest(store, "old-run", now - timedelta(hours=30))
    _manifest(store, "good-run", now - timedelta(hours=2))
    _manifest(store, "bad-run", now - timedelta(hours=1))
    out = tmp_path / "night"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["nightly", "--since", "24h", "--out", str(out), "--store", store.root])
    assert status == 1  # one report failed
    index = out / "index.html"
    assert stdout.getvalue().strip() == str(index)
    page = index.read_text()
    assert "href='nightly.html'" in page
    assert "href='scenario_report-good-run.html'" in page
    assert "old-run" not in page  # older than --since
    assert "cannot read bad-run" in page  # the failure is listed, not hidden
    assert (out / "scenario_report-good-run.html").is_file()
    assert (out / "scenario_report-bad-run.ipynb").is_file()  # kept for debugging
    assert "[2/2] bad-run" in stderr.getvalue()
    executed = json.loads((out / "nightly.ipynb").read_text())
    assert "since_hours = 24.0" in "".join(executed["cells"][1]["source"])
