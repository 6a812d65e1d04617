"""Fan-out measured end to end: the built-in target's broadcast rooms, a real mosquitto.

A message sent on one connection must reach every other member of its group:
one ``delivery`` row per member, every one matched, no protocol error, and
the anomaly rules must not mistake the copies for duplicate replies.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from streambench.analyze import detect_anomalies
from streambench.api import run_async
from streambench.capture.store import Store
from streambench.scenario.load import load_scenario, with_overrides
from streambench.scenario.model import Scenario
from streambench.target.server import start_server
from tests.backends.conftest import REPO, Serve
from tests.mosquitto import Mosquitto


def short(scenario: Scenario, **overrides: object) -> Scenario:
    shorter = with_overrides(scenario, duration=1.0, rate=40, **overrides)
    return shorter.model_copy(update={"load": shorter.load.model_copy(update={"timeout": 10.0})})


def kinds(events: pl.DataFrame) -> dict[str, int]:
    return dict(events.group_by("kind").len().iter_rows())


async def test_every_member_of_a_room_gets_every_message_of_the_builtin_broadcast(
        store: Store) -> None:
    scenario = short(load_scenario(REPO / "scenarios" / "fanout.yaml"), connections=8)
    result = await run_async(scenario, store=store)
    assert result.status == "completed"
    events = store.events(result.run_id).collect()
    sent = events.filter(pl.col("kind") == "notify")
    deliveries = events.filter(pl.col("kind") == "delivery")
    assert sent.height >= 30
    assert kinds(events).keys() == {"connect", "notify", "delivery", "disconnect"}
    # 8 connections in 2 rooms: each message reaches the 3 other members of its room
    assert deliveries.height == 3 * sent.height
    per_receiver = deliveries.group_by("conn").agg(pl.len(), pl.col("status").first())
    by_room = dict(sent.group_by("status").len().iter_rows())
    for conn, received, room in per_receiver.iter_rows():
        assert received == by_room[room], conn
        assert room == ("lobby" if conn % 2 == 0 else "garden")
    assert deliveries["cid"].is_in(sent["cid"].implode()).all()
    assert deliveries["latency_ms"].min() > 0
    fanout = result.summary["fanout"]
    assert (fanout["messages"], fanout["delivered"]) == (sent.height, deliveries.height)
    assert (fanout["missed"], fanout["duplicates"], fanout["delivery_ratio"]) == (0, 0, 1.0)
    assert {g["group"] for g in fanout["groups"]} == {"lobby", "garden"}
    assert fanout["last_member_ms"]["p99"] >= fanout["latency_ms"]["p50"]
    assert result.summary["protocol_errors"] == result.summary["timeouts"] == 0
    assert result.summary["achieved_ratio"] > 0.9  # the broadcasts are the load offered
    found = detect_anomalies(store.events(result.run_id), manifest=dict(result.manifest))
    assert not {a.rule for a in found} & {"duplicate-replies", "unmatched-replies",
                                          "lost-replies", "error-replies"}


async def test_the_subscribers_of_an_mqtt_topic_are_its_group(store: Store,
                                                              tmp_path: Path) -> None:
    scenario = Scenario.model_validate({
        "name": "mqtt-fanout", "variables": {"room": ["a", "b"]},
        "target": {"protocol": "mqtt", "url": "mqtt://127.0.0.1:1", "publish": "chat/{room}",
                   "subscribe": "chat/{room}", "qos": 1},
        "fanout": {"self": True, "senders": 2},
        "load": {"connections": 6, "rate": 40, "duration": 1.0, "timeout": 10.0},
        "message": {"body": {"text": "{{sentence}}"}, "expect": "fanout"},
    })
    with Mosquitto(tmp_path / "mosquitto") as broker:
        result = await run_async(with_overrides(scenario, target=broker.url), store=store)
    events = store.events(result.run_id).collect()
    sent = events.filter(pl.col("kind") == "notify")
    assert kinds(events).keys() == {"connect", "notify", "delivery", "disconnect"}
    # 3 subscribers per topic, the sender among them (fanout.self)
    assert events.filter(pl.col("kind") == "delivery").height == 3 * sent.height
    assert set(sent["status"]) == {"chat/a", "chat/b"}


async def test_a_django_channels_room_broadcast_is_measured_as_fan_out(
        serve: Serve, redis_port: int, store: Store) -> None:
    port = serve("channels_chat", "--redis-port", str(redis_port))
    scenario = load_scenario(REPO / "scenarios" / "channels_chat.yaml")
    url = f"ws://127.0.0.1:{port}/ws/chat/{{{{room}}}}/"
    target = scenario.target.model_copy(update={
        "url": url, "headers": {"Origin": f"http://127.0.0.1:{port}"}})
    scenario = short(scenario.model_copy(update={"target": target}), connections=6)
    result = await run_async(scenario, store=store)
    assert result.status == "completed"
    events = store.events(result.run_id).collect()
    sent = events.filter(pl.col("kind") == "notify")
    assert sent.height >= 30
    assert kinds(events).keys() == {"connect", "notify", "delivery", "disconnect"}
    # 6 connections in 2 rooms: each message reaches its room's 3 members, sender included
    deliveries = events.filter(pl.col("kind") == "delivery")
    assert deliveries.height == 3 * sent.height
    assert set(deliveries["topic"]) == {"/ws/chat/lobby/", "/ws/chat/garden/"}
    assert result.summary["protocol_errors"] == 0


async def test_members_that_never_get_a_message_are_fan_out_loss(store: Store) -> None:
    # The client counts every connection in one group, the server's rooms split them:
    # the other room's members never get a message.
    server = await start_server()
    try:
        room_url = server.ws_url.rsplit("/", 1)[0] + "/broadcast/{{room}}"
        scenario = Scenario.model_validate({
            "name": "lossy-fanout", "variables": {"room": ["a", "b"]},
            "target": {"url": room_url}, "fanout": {"senders": 1},
            "load": {"connections": 4, "rate": 20, "duration": 0.5, "timeout": 0.5},
            "message": {"body": {"text": "{{sentence}}"}, "expect": "fanout"},
        })
        result = await run_async(scenario, store=store)
    finally:
        await server.close()
    fanout = result.summary["fanout"]
    assert fanout["messages"] >= 5
    # connection 0 (room a) sends: 2 is in its room, 1 and 3 are not
    assert fanout["delivered"] == fanout["messages"]
    assert fanout["missed"] == 2 * fanout["messages"]
    assert result.summary["timeouts"] == 0  # a missed delivery is no missed reply
    found = {a.rule for a in detect_anomalies(store.events(result.run_id),
                                              manifest=dict(result.manifest))}
    assert "fanout-loss" in found
    assert not found & {"duplicate-replies", "unmatched-replies", "fanout-duplicates"}
