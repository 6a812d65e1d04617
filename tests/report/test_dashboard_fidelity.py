"""The dashboard does not distort the run it shows.

``scenarios/smoke.yaml`` run under the live dashboard notebook (executed as a
notebook, with the dashboard refreshing and drawing in the kernel, the path
given relative to the repository as a user in ``notebooks/`` types it) must
measure what the same run measures from the CLI on the same machine: schedule
lag p99 and latency p99 within 2 ms. When the generator shared the kernel's
event loop they were hundreds of milliseconds apart.

The machine is shared (other test runs, other developers), and one run's p99
(the 20th worst of 2,000 messages) can move by more than 2 ms on its own. So
each attempt brackets the dashboard run between two CLI runs and asks that the
dashboard's figures be at most 2 ms above the CLI's (the worse of the two, so
the bound is as tight as the machine is quiet; a dashboard run that came out
better is not a distortion); an attempt that does not is measured again, up
to ``ATTEMPTS``. A systematic distortion fails every attempt. (Three: on a host
with a few percent of CPU steal, two attempts both came out 0.02-0.1 ms over once,
with the CLI runs around them at 2-5 ms of lag p99 where a quiet host gives 1.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streambench.analyze.summary import summarize
from streambench.capture.store import Store
from tests.jupyter import jupyter_env

pytestmark = pytest.mark.serial  # timing judged against the machine: run alone

REPO = Path(__file__).resolve().parents[2]
ATTEMPTS = 3
TOLERANCE_MS = 2.0


def cli_run(store: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "streambench", "run", "scenarios/smoke.yaml", "--store",
         str(store), "--json", "--progress", "never", "--workers", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return dict(json.loads(done.stdout))


def dashboard_run(store: Path, out: Path) -> dict[str, Any]:
    import papermill

    papermill.execute_notebook(
        str(REPO / "notebooks" / "live_dashboard.ipynb"), str(out),
        parameters={"scenario": "scenarios/smoke.yaml", "store": str(store)},
        kernel_name="python3", progress_bar=False, cwd=str(REPO / "notebooks"),
        execution_timeout=120)  # fmt: skip
    (manifest,) = Store(store).runs()
    return summarize(Store(store).events(manifest["run_id"]), manifest)


def figures(summary: dict[str, Any]) -> tuple[float, float]:
    return summary["schedule_lag_ms"]["p99"], summary["latency_ms"]["p99"]


@pytest.mark.timeout(ATTEMPTS * 150)
def test_smoke_under_the_dashboard_measures_what_the_cli_measures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in jupyter_env(tmp_path / "jupyter").items():
        monkeypatch.setenv(name, value)
    attempts = []
    for attempt in range(ATTEMPTS):
        before = figures(cli_run(tmp_path / f"cli-{attempt}-a"))
        dash = figures(dashboard_run(tmp_path / f"dash-{attempt}", tmp_path / f"{attempt}.ipynb"))
        after = figures(cli_run(tmp_path / f"cli-{attempt}-b"))
        attempts.append({"cli before (lag p99, latency p99)": before, "dashboard": dash,
                         "cli after": after})
        # a distortion makes the dashboard's run worse; one that came out better is noise
        if all(d <= max(b, a) + TOLERANCE_MS for b, d, a in zip(before, dash, after, strict=True)):
            return
    pytest.fail(f"the dashboard run was never within {TOLERANCE_MS} ms of the CLI's: {attempts}")
