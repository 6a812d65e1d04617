"""The live dashboard as a JupyterLab user uses it: notebooks/live_dashboard.ipynb
opened in a real JupyterLab in headless Chromium, Run > Run All Cells, then the
dashboard's Stop button, or Kernel > Interrupt Kernel, in the middle of the run.

Both must end the run ``aborted`` with everything captured kept and no process
left behind; the stop button must work although the last cell is still waiting
for the run (Run All).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psutil
import pytest

from streambench.capture.store import Store
from tests.helpers import wait_for
from tests.jupyter import Lab, descendants, gone

from .browser import VIEWPORT, PageLog

pytestmark = pytest.mark.serial  # timing judged against the machine: run alone

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "live_dashboard.ipynb"
PLANNED_S = 30  # the run is always stopped long before


def notebook_in(lab: Lab, name: str, *, store: Path) -> str:
    """A copy of the live dashboard notebook in the lab's root with its parameters set
    (as papermill would) to a long example run in ``store``."""
    doc = json.loads(NOTEBOOK.read_text())
    (parameters,) = [c for c in doc["cells"] if "parameters" in c["metadata"].get("tags", [])]
    parameters["source"] = (f"scenario = None\nrun_id = None\nstore = {str(store)!r}\n"
                            f"duration = {PLANNED_S}.0\n")
    (lab.root / name).write_text(json.dumps(doc))
    return name


def open_and_run_all(browser: Any, lab: Lab, name: str) -> tuple[Any, PageLog]:
    page = browser.new_page(viewport=VIEWPORT)
    log = PageLog(page)
    # a workspace of its own, reset: only this notebook open, so Run All runs it
    workspace = Path(name).stem
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab.token}")
    page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
    return page, log


def wait_sending(page: Any, store: Store) -> dict[str, Any]:
    """Until the run has written parts and the dashboard shows messages sent."""
    wait_for(lambda: len(store.parts("events")) >= 2, timeout=90, what="parts on disk")
    wait_for(lambda: sent_on_page(page) > 0, timeout=30, what="the dashboard's sent counter")
    return store.runs()[0]


def sent_on_page(page: Any) -> int:
    """The number on the dashboard's "sent" card."""
    text = page.evaluate("""() => {
        const labels = [...document.querySelectorAll('.widget-html-content div')]
            .filter(d => d.innerText.trim() === 'sent');
        return labels.length ? labels[0].nextElementSibling.innerText : '0';
    }""")  # fmt: skip
    return int(str(text).replace(",", "") or 0) if str(text).replace(",", "").isdigit() else 0


def test_run_all_then_stop_ends_the_run_aborted(lab: Lab, browser: Any, tmp_path: Path,
                                                artifacts: Path) -> None:
    store = Store(tmp_path / "store")
    page, log = open_and_run_all(browser, lab, notebook_in(lab, "stop.ipynb", store=tmp_path /
                                                           "store"))
    running = wait_sending(page, store)
    processes = [psutil.Process(running["pid"]), *descendants(running["pid"])]
    page.get_by_role("button", name="Stop run").click()
    # the last cell (still awaiting the run when Stop was clicked) prints how it ended
    page.get_by_text(re.compile(r"run \S+: aborted")).wait_for(timeout=60_000)
    page.screenshot(path=str(artifacts / "live-dashboard-stopped.png"), full_page=True)
    (manifest,) = store.runs()
    assert manifest["status"] == "aborted"
    assert manifest["abort_reason"] == "stopped from the dashboard"
    events = store.events(manifest["run_id"]).collect()
    assert events.height == manifest["counts"]["events"] > 0
    assert sent_on_page(page) == events.filter(kind="send").height  # the final frame
    wait_for(lambda: gone(processes), timeout=30, what="the run's processes to exit")
    assert log.errors == []
    page.close()


def test_kernel_interrupt_mid_run_ends_it_aborted_with_no_process_left(
        lab: Lab, browser: Any, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    page, _log = open_and_run_all(browser, lab, notebook_in(lab, "interrupt.ipynb",
                                                            store=tmp_path / "store"))
    running = wait_sending(page, store)
    processes = [psutil.Process(running["pid"]), *descendants(running["pid"])]
    assert any("serve" in p.cmdline() for p in processes)  # the built-in target
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Interrupt Kernel")).click()
    wait_for(lambda: store.runs()[0]["status"] != "running", timeout=60, what="the run to end")
    wait_for(lambda: gone(processes), timeout=30, what="the run's processes to exit")
    (manifest,) = store.runs()
    assert manifest["status"] == "aborted"
    assert manifest["abort_reason"] == "SIGINT"
    assert not manifest.get("stale")
    assert store.events(manifest["run_id"]).collect().height == manifest["counts"]["events"]
    page.close()
