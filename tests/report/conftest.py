"""One example run and its rendered report, shared by the report tests (executing
a notebook costs seconds, so it is done once per session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streambench.capture.store import Store
from tests.jupyter import Lab


@dataclass(frozen=True)
class Rendered:
    store: Store
    run_id: str
    html: Path
    cli_status: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str]:
    """A short example run (embedded target, faults on) in its own store."""
    from streambench.report.examples import example_runs

    store, (run_id,) = example_runs(store=tmp_path_factory.mktemp("store"))
    return store, run_id


@pytest.fixture(scope="session")
def rendered(example: tuple[Store, str], tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """``streambench report RUN --store S --out DIR`` run once through the real CLI."""
    import contextlib
    import io

    from streambench.cli import main

    store, run_id = example
    out = tmp_path_factory.mktemp("reports")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["report", run_id, "--store", store.root, "--out", str(out)])
    return Rendered(store, run_id, Path(stdout.getvalue().strip()), status, stdout.getvalue(),
                    stderr.getvalue())


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where tests keep files worth looking at: $STREAMBENCH_ARTIFACTS, else tmp_path."""
    root = Path(os.environ.get("STREAMBENCH_ARTIFACTS") or tmp_path)
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One JupyterLab for the browser tests of the session (127.0.0.1, a token, temporary
    Jupyter/IPython directories; stopped by pid)."""
    from tests.jupyter import jupyterlab

    home, root = tmp_path_factory.mktemp("jupyter"), tmp_path_factory.mktemp("lab")
    with jupyterlab(home, root=root) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian chromium (Playwright) for the session."""
    from .browser import chromium, find_browser

    executable = find_browser()
    if executable is None:
        pytest.fail("no chromium: apt-get install chromium (scripts/test does)")
    with chromium(executable) as opened:
        yield opened
