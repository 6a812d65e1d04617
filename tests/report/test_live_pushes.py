"""The live view of a run that only listens: its pushes are counted and shown."""

from __future__ import annotations

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.report import dashboard_view
from streambench.report.live import LiveRun
from tests.helpers import scenario


async def test_a_push_only_run_shows_its_pushes(store: Store) -> None:
    sc = scenario(target={"protocol": "sse", "url": "embedded"},
                  load={"connections": 1, "rate": 40, "duration": "500ms"})
    result = await run_async(sc, store=store)
    state = LiveRun(result.run_id, store, detect=False).poll()
    assert state.counts["pushes"] == result.summary["pushes"]["received"] > 5
    assert state.counts["sent"] == state.counts["received"] == 0
    card = dashboard_view.render(state)["card:pushes"]
    assert f">{state.counts['pushes']:,}<" in card
