"""streambench against back ends written as their frameworks' tutorials write them.

Each test runs the example scenario of scenarios/ (the one docs/backends.md
shows) against a real server started by pid on 127.0.0.1, shortened to a
second or two, and checks that every expected reply matched with zero
protocol errors, and that what is not an answer is recorded as what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from streambench.analyze.summary import format_summary
from streambench.api import RunResult, run_async
from streambench.capture.store import Store
from streambench.scenario.load import load_scenario, with_overrides
from streambench.scenario.model import Scenario
from tests.backends.conftest import REPO, Serve
from tests.mosquitto import Mosquitto

pytestmark = pytest.mark.slow


async def run_example(name: str, url: str, store: Store, **overrides: Any) -> RunResult:
    scenario = with_overrides(load_scenario(REPO / "scenarios" / f"{name}.yaml"), target=url,
                              duration=overrides.pop("duration", 1.5),
                              rate=overrides.pop("rate", 100), connections=2)
    return await run_async(patient(scenario), store=store)


def patient(scenario: Scenario) -> Scenario:
    """A reply timeout that a busy test machine cannot exceed (latency is still measured
    from the intended send; only what counts as lost changes)."""
    return scenario.model_copy(update={"load": scenario.load.model_copy(
        update={"timeout": 15.0})})


def all_matched(result: RunResult) -> dict[str, Any]:
    s = result.summary
    assert result.status == "completed"
    assert s["sent"] > 50
    assert s["received"] == s["sent"], s
    assert (s["errors"], s["timeouts"], s["protocol_errors"]) == (0, 0, 0), s
    assert s["replies"]["matched"] == s["sent"]
    assert s["replies"]["unmatched"] == 0
    return s


async def test_aiohttp_send_json(serve: Serve, store: Store) -> None:
    port = serve("aiohttp_json")
    result = await run_example("aiohttp_json", f"ws://127.0.0.1:{port}/chat", store)
    s = all_matched(result)
    assert s["replies"]["classified"] == {"welcome": 2}  # one per connection


async def test_fastapi_ack_envelope(serve: Serve, store: Store) -> None:
    port = serve("fastapi_ack")
    result = await run_example("fastapi_ack", f"ws://127.0.0.1:{port}/ws", store)
    s = all_matched(result)
    assert s["replies"]["classified"]["notice"] >= s["sent"] // 10 - 1
    recv = store.events(result.run_id).filter(pl.col("kind") == "recv").collect()
    assert set(recv["cid"]) == set(store.events(result.run_id).filter(
        pl.col("kind") == "send").collect()["cid"])  # the ack's reply_to, not item.id


async def test_jsonrpc_server(serve: Serve, store: Store) -> None:
    port = serve("jsonrpc_ws")
    result = await run_example("jsonrpc", f"ws://127.0.0.1:{port}/", store)
    all_matched(result)
    events = store.events(result.run_id).collect()
    notifications = events.filter(pl.col("kind") == "notify")
    assert notifications.height > 0  # log calls: sent, never awaited, never an error
    assert events.filter(pl.col("kind") == "recv")["cid"].str.contains(r"^\d+$").all()


async def test_graphql_subscriptions_over_graphql_transport_ws(serve: Serve,
                                                               store: Store) -> None:
    port = serve("strawberry_graphql")
    result = await run_example("graphql", f"ws://127.0.0.1:{port}/graphql", store, rate=40)
    s = all_matched(result)
    events = store.events(result.run_id).collect()
    steps = events.filter(pl.col("kind") == "step")
    assert steps["status"].to_list() == ["connection_init"] * 2
    assert (steps["latency_ms"] > 0).all()
    # count(upTo: 3): the first next answers, two more nexts (pushes) and a complete follow
    assert s["replies"]["classified"] == {"complete": s["sent"]}
    assert s["pushes"]["received"] == 2 * s["sent"]
    pushes = events.filter(pl.col("kind") == "push")
    assert set(pushes["status"]) == {"next"}
    assert pushes["cid"].is_in(events.filter(pl.col("kind") == "send")["cid"]).all()


async def test_socketio_server(serve: Serve, store: Store) -> None:
    port = serve("socketio_server")
    result = await run_example("socketio", f"ws://127.0.0.1:{port}", store)
    s = all_matched(result)
    assert s["replies"]["classified"]["event"] >= s["sent"] // 5 - 2  # the pushed news
    steps = store.events(result.run_id).filter(pl.col("kind") == "step").collect()
    assert sorted(steps["status"]) == ["connect", "connect", "open", "open"]


@pytest.mark.parametrize("correlation", [False, True], ids=["envelope", "correlation-data"])
async def test_mqtt_device_answering_on_another_topic(serve: Serve, store: Store,
                                                      tmp_path: Path, correlation: bool) -> None:
    with Mosquitto(tmp_path / "mosquitto") as broker:
        serve("mqtt_device", *(["--correlation"] if correlation else []),
              port=broker.port, ready=lambda _: (tmp_path / "mqtt_device.log").exists()
              and b"ready" in (tmp_path / "mqtt_device.log").read_bytes())
        scenario = with_overrides(load_scenario(REPO / "scenarios" / "mqtt_device.yaml"),
                                  target=broker.url, duration=1.5, rate=100, connections=2)
        if correlation:
            data = scenario.model_dump()
            data["target"]["correlation_data"] = True
            data["message"].update(cid_field=None, seq_field=None)
            data["replies"]["id"] = None
            scenario = type(scenario).model_validate(data)
        result = await run_async(patient(scenario), store=store)
    all_matched(result)
    topics = store.events(result.run_id).filter(pl.col("kind") == "recv").collect()["topic"]
    assert set(topics) == {"devices/sensor-0/reply", "devices/sensor-1/reply"}


@pytest.mark.parametrize("skip_every", [None, 10], ids=["every-tick", "skipping"])
async def test_sse_starlette_ticker_with_a_server_timestamp(serve: Serve, store: Store,
                                                            skip_every: int | None) -> None:
    port = serve("sse_ticker", *(["--skip-every", str(skip_every)] if skip_every else []))
    result = await run_example("sse_ticker", f"http://127.0.0.1:{port}/ticks", store)
    s = result.summary
    assert result.status == "completed"
    assert (s["sent"], s["errors"], s["protocol_errors"]) == (0, 0, 0), s
    pushes = store.events(result.run_id).filter(pl.col("kind") == "push").collect()
    assert pushes.height == s["pushes"]["received"] > 20
    # every ISO 8601 stamp was read (but of pushes that waited unread while the run
    # started: when they arrived is not known, so they have no gap and no staleness)
    assert pushes.filter(pl.col("sent_ns").is_null(), pl.col("intended_ns").is_not_null()
                         ).height == 0
    assert pushes["sent_ns"].null_count() < pushes.height // 2
    stale = s["pushes"]["staleness_ms"]
    assert 0 <= stale["p50"] <= stale["p99"] < 1000  # one host, one clock
    assert s["pushes"]["gap_ms"]["p50"] > 0
    assert s["intended_rate"] is None  # nothing was offered
    assert "latency" not in format_summary(s)
    # what the server skipped on purpose is what is missing, nothing else
    per_conn = pushes.group_by("conn").agg(low=pl.col("seq").min(), high=pl.col("seq").max())
    skipped = sum(high // skip_every - (low - 1) // skip_every for low, high in
                  per_conn.select("low", "high").iter_rows()) if skip_every else 0
    assert s["pushes"]["sequence"] == {"missing": skipped, "duplicates": 0, "out_of_order": 0,
                                       "streams": 2}
    assert skipped > 0 or not skip_every
