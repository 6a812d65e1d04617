"""Runs started from a notebook live in a process of their own (streambench.background).

The kernel only reads progress; Kernel > Interrupt and a kernel restart stop
the run cleanly (flushed, ``aborted``), the built-in target is never hit by
the kernel's signal, and no process is left behind. Real kernels, real runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import psutil
import pytest

from streambench.background import start_run
from streambench.capture.store import Store
from streambench.report.examples import example_scenario
from tests.helpers import wait_for
from tests.jupyter import descendants, execute, gone, kernel

LONG = 30.0  # seconds planned; every test stops the run long before


def _target_of(run_pid: int) -> psutil.Process:
    return wait_for(lambda: next((p for p in descendants(run_pid) if "serve" in p.cmdline()),
                                 None), timeout=30, what="the built-in target")


def test_a_background_run_has_its_own_process_and_stop_keeps_what_it_captured(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    handle = start_run(example_scenario(duration=LONG, faults=False), store=store)
    assert handle.pid is not None
    assert handle.pid != os.getpid()
    target = _target_of(handle.pid)
    # the target's own session: a signal to the run's process group never reaches it
    assert os.getsid(target.pid) != os.getsid(handle.pid)
    wait_for(lambda: handle.latest is not None and handle.latest.sent > 0, timeout=30,
             what="progress from the run's process")
    processes = [psutil.Process(handle.pid), *descendants(handle.pid)]
    handle.stop("enough")
    result = handle.result(timeout=60)
    assert result.status == "aborted"
    assert result.manifest["abort_reason"] == "enough"
    assert result.summary["sent"] == store.events(handle.run_id).collect().filter(
        kind="send").height > 0
    wait_for(lambda: gone(processes), timeout=15, what="the run's processes to exit")


@pytest.mark.parametrize("how", ["interrupt", "restart"])
def test_kernel_interrupt_or_restart_stops_the_run_it_started(tmp_path: Path, how: str) -> None:
    store = Store(tmp_path / "store")
    with kernel(tmp_path / "jupyter", cwd=tmp_path) as (km, client):
        execute(client, "import streambench as sb\n"
                        f"handle = sb.start_run(sb.example_scenario(duration={LONG}, "
                        f"faults=False), store={store.root!r})")  # fmt: skip
        wait_for(lambda: len(store.parts("events")) >= 2, timeout=60, what="two parts on disk")
        run_pid = store.runs()[0]["pid"]
        processes = [psutil.Process(run_pid), *descendants(run_pid)]
        assert any("serve" in p.cmdline() for p in processes)
        if how == "interrupt":  # while the kernel is idle: the run must stop all the same
            km.interrupt_kernel()
        else:
            km.restart_kernel()
        wait_for(lambda: store.runs()[0]["status"] != "running", timeout=60,
                 what="the run to end")
        wait_for(lambda: gone(processes), timeout=30, what="the run's processes to exit")
        (manifest,) = store.runs()
    assert manifest["status"] == "aborted"
    assert not manifest.get("stale")  # ended by itself, flushed: not killed
    events = store.events(manifest["run_id"]).collect()
    assert events.height == manifest["counts"]["events"]
    # the target was not killed under the run: nothing failed before the run's own
    # tear-down (a reply in flight at the stop may end as an error as it closes)
    stopped = events.filter(kind="disconnect")["ts"].min()
    assert events.filter(kind="error").filter(pl.col("ts") < stopped).height == 0


def test_interrupting_sb_run_in_a_cell_stops_the_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with kernel(tmp_path / "jupyter", cwd=tmp_path) as (km, client):
        execute(client, "import streambench as sb")
        msg_id = client.execute(f"sb.run(sb.example_scenario(duration={LONG}, faults=False), "
                                f"store={store.root!r})")  # fmt: skip
        wait_for(lambda: len(store.parts("events")) >= 2, timeout=60, what="two parts on disk")
        run_pid = store.runs()[0]["pid"]
        assert run_pid != km.provisioner.pid  # not the kernel's own process
        processes = [psutil.Process(run_pid), *descendants(run_pid)]
        km.interrupt_kernel()
        reply = client.get_shell_msg(timeout=90)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = client.get_shell_msg(timeout=90)
        wait_for(lambda: gone(processes), timeout=30, what="the run's processes to exit")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "RunInterrupted"
    (manifest,) = store.runs()
    assert manifest["status"] == "aborted"
    assert store.events(manifest["run_id"]).collect().height == manifest["counts"]["events"]


def test_a_run_that_fails_in_its_process_raises_its_error_here(tmp_path: Path) -> None:
    from streambench.errors import TargetUnreachable
    from tests.helpers import free_port, scenario

    unreachable = scenario(target={"protocol": "websocket",
                                   "url": f"ws://127.0.0.1:{free_port()}/"})
    handle = start_run(unreachable, store=Store(tmp_path / "store"))
    with pytest.raises(TargetUnreachable, match="unreachable"):
        handle.result(timeout=60)
    assert handle.done()
