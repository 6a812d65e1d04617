"""The live dashboard against a real run: its update path (refresh) and its stop button."""

from __future__ import annotations

from pathlib import Path

import pytest

from streambench.capture.store import Store
from streambench.report.dashboard import Dashboard
from streambench.report.examples import example_scenario
from tests.helpers import wait_for

MAX_REFRESHES = 40  # bounds the loop; the run reports progress about once a second


def _sent(dash: Dashboard) -> int:
    assert dash.state is not None
    return dash.state.counts["sent"]


def test_refresh_follows_a_live_run_and_stop_aborts_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    dash = Dashboard.start(example_scenario(duration=30, faults=False), store=store)
    handle = dash.live.handle
    assert handle is not None
    assert not dash.stop_button.disabled
    # the run starts in a process of its own (interpreter, target, connections)
    wait_for(lambda: handle.latest is not None, timeout=60, what="the run's first progress")
    seen_sent: list[int] = []
    seen_svg: set[str] = set()
    for _ in range(MAX_REFRESHES):
        last = handle.latest.sent if handle.latest else -1
        wait_for(lambda last=last: handle.latest and handle.latest.sent > last, timeout=10,
                 what="the run's next progress report")  # fmt: skip
        state = dash.refresh()
        assert state.status == "running"
        if state.counts["sent"] > (seen_sent[-1] if seen_sent else 0):
            seen_sent.append(state.counts["sent"])
            seen_svg.add(dash.throughput_chart.value)
        if len(seen_sent) >= 3:
            break
    assert len(seen_sent) >= 3, seen_sent  # counters grew across refreshes
    assert seen_sent == sorted(seen_sent)
    assert f"{seen_sent[-1]:,}" in dash.counters["sent"].value
    assert len({v for v in seen_svg if "<svg" in v}) >= 2  # the chart was redrawn with new data
    assert dash.state is not None
    assert dash.state.windows.height >= 2
    assert "<svg" in dash.latency_chart.value
    assert dash.progress.value > 0

    dash.stop_button.click()  # what a user's click does
    result = handle.result(timeout=30)
    state = dash.refresh()
    assert result.status == "aborted"
    assert state.status == "aborted"
    assert store.manifest(handle.run_id)["status"] == "aborted"
    assert dash.stop_button.disabled
    assert state.counts["sent"] >= seen_sent[-1]
    assert state.elapsed_s < 30


def test_attach_by_run_id_follows_a_run_someone_else_started(tmp_path: Path) -> None:
    from streambench.background import start_run

    store = Store(tmp_path / "store")
    handle = start_run(example_scenario(duration=2.5), store=store)
    dash = Dashboard.attach(handle.run_id, store=store.root, interval_s=0.5)
    assert dash.stop_button.disabled  # only the process running it could stop it
    state = dash.wait(timeout=30)
    assert handle.result(timeout=30).status == "completed"
    assert state.status == "completed"
    assert state.counts["sent"] == handle.result().summary["sent"]
    assert state.counts["received"] > 0
    assert dash.progress.value == 1.0
    assert "reply-stall" in dash.alerts.value  # the example's stall fired an alert
    assert "<svg" in dash.snapshot().data
    assert dash.stop() is False


@pytest.mark.serial
async def test_the_first_numbers_show_within_a_second_of_the_first_send(tmp_path: Path) -> None:
    import asyncio
    import time

    import polars as pl

    from tests.helpers import TIME_SCALE

    store = Store(tmp_path / "store")
    dash = Dashboard.start(example_scenario(duration=4, faults=False), store=store)
    shown = asyncio.Event()
    shown_ns = 0

    def on_change(change: dict) -> None:  # the moment the "sent" card shows a number > 0
        nonlocal shown_ns
        if not shown.is_set() and ">0<" not in change["new"] and ">-<" not in change["new"]:
            shown_ns = time.time_ns()
            shown.set()

    dash.counters["sent"].observe(on_change, "value")
    dash.watch()
    async with asyncio.timeout(60):
        await shown.wait()
        state = await dash.finished()
    assert state.status == "completed"
    first_send = store.events(state.run_id).filter(pl.col("kind") == "send").select(
        pl.col("ts").min().dt.epoch("ns")).collect().item()
    assert shown_ns - first_send <= 1e9 * TIME_SCALE
    assert state.elapsed_s <= 4.0  # the clock stops at the plan
