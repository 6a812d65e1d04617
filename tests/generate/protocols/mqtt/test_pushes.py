"""Pushes over MQTT: a sensor publishes numbered, timestamped telemetry through a real
mosquitto; streambench subscribes and records each message as a push (one number skipped
on purpose every 25)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import aiomqtt
import polars as pl

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.scenario.model import Scenario
from tests.mosquitto import Mosquitto


async def sensor(port: int, stop: asyncio.Event) -> None:
    """Publishes ``{"type": "telemetry", "n": 1, 2, ..., "ts": <epoch s>}`` every 10 ms
    to sensors/0 and sensors/1, never the multiples of 25."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="sensor") as client:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 25:
                for device in (0, 1):
                    body = {"type": "telemetry", "n": n, "ts": time.time(), "celsius": 21.5}
                    await client.publish(f"sensors/{device}", json.dumps(body), qos=0)
            await asyncio.sleep(0.01)


async def test_telemetry_on_a_subscribed_topic_is_pushes(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        stop = asyncio.Event()
        publisher = asyncio.create_task(sensor(broker.port, stop))
        try:
            sc = Scenario.model_validate({
                "name": "telemetry",
                "target": {"protocol": "mqtt", "url": broker.url, "publish": "cmd/{conn}",
                           "subscribe": "sensors/{conn}", "qos": 0},
                "load": {"connections": 2, "rate": 4, "duration": "1s"},
                "message": {"body": {"op": "noop"}, "expect": "none", "cid_field": None,
                            "seq_field": None},
                "replies": {"rules": [{"name": "telemetry", "match": {"type": "telemetry"},
                                       "as": "push"}]},
                "stream": {"timestamp": "ts", "timestamp_format": "epoch_s", "sequence": "n"},
            })
            store = Store(tmp_path / "store")
            result = await run_async(sc, store=store)
        finally:
            stop.set()
            with contextlib.suppress(aiomqtt.MqttError):
                await publisher
    s = result.summary
    assert (s["protocol_errors"], s["errors"]) == (0, 0)
    pushes = store.events(result.run_id).filter(pl.col("kind") == "push").collect()
    assert set(pushes["topic"]) == {"sensors/0", "sensors/1"}
    assert pushes.height == s["pushes"]["received"] > 40
    assert s["pushes"]["staleness_ms"]["p50"] is not None
    ranges = pushes.group_by("conn").agg(low=pl.col("seq").min(), high=pl.col("seq").max())
    skipped = sum(high // 25 - (low - 1) // 25 for low, high in
                  ranges.select("low", "high").iter_rows())
    assert skipped > 0
    assert s["pushes"]["sequence"] == {"missing": skipped, "duplicates": 0, "out_of_order": 0,
                                       "streams": 2}
