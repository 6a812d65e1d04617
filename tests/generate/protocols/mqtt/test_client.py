"""MQTT runs against a real mosquitto: delivery, sessions, outages, credentials, wills."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiomqtt
import polars as pl
import pytest
import yaml

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import TargetError, TargetUnreachable
from streambench.generate.engine.lifecycle import RunControl
from tests.helpers import TIME_SCALE, free_port, scenario
from tests.mosquitto import Mosquitto

WAIT_S = 10.0 * TIME_SCALE


def mqtt(url: str, **target) -> dict:
    return {"protocol": "mqtt", "url": url, "publish": "devices/{conn}/up", **target}


def kinds(events: pl.DataFrame) -> dict[tuple[str, str | None], int]:
    return dict(((k, s), n) for k, s, n in events.group_by("kind", "status").len().iter_rows())


@pytest.mark.parametrize("engine", ["wire", "aiomqtt"])
async def test_qos1_clean_run_loses_nothing(mosquitto: Mosquitto, store: Store, engine: str):
    sc = scenario(target=mqtt(mosquitto.url, qos=1, mqtt_engine=engine),
                  load={"connections": 4, "rate": 800, "duration": "1s"})
    result = await run_async(sc, store=store)
    s = result.summary
    assert result.status == "completed"
    assert s["sent"] == s["received"] == 800
    assert s["errors"] == s["timeouts"] == s["protocol_errors"] == s["send_failures"] == 0
    events = store.events(result.run_id).collect()
    recv = events.filter(pl.col("kind") == "recv")
    assert recv["cid"].n_unique() == 800
    assert set(recv["topic"]) == {f"devices/{c}/up" for c in range(4)}
    assert events["protocol"].unique().to_list() == ["mqtt"]
    assert (recv["latency_ms"] >= recv["service_ms"]).all()


@pytest.mark.parametrize(("qos", "version", "engine"), [
    (0, "3.1.1", "wire"), (2, "5", "wire"), (2, "3.1.1", "aiomqtt"),
])
async def test_every_qos_and_protocol_version(mosquitto: Mosquitto, store: Store, qos, version,
                                              engine):
    sc = scenario(target=mqtt(mosquitto.url, qos=qos, mqtt_version=version, mqtt_engine=engine),
                  load={"connections": 2, "rate": 200, "duration": "500ms"})
    s = (await run_async(sc, store=store)).summary
    assert s["sent"] == 100
    assert s["received"] == 100  # loopback, a broker that is not overloaded: even QoS 0


async def test_a_device_answering_on_another_topic_is_matched_by_cid(
        mosquitto: Mosquitto, store: Store):
    """publish devices/{conn}/up, subscribe devices/{conn}/down: a responder echoes."""
    ready = asyncio.Event()

    async def responder() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="responder") as c:
            await c.subscribe("devices/+/up", qos=1)
            ready.set()
            async for message in c.messages:
                conn = str(message.topic).split("/")[1]
                await c.publish(f"devices/{conn}/down", message.payload, qos=1)

    task = asyncio.create_task(responder())
    try:
        await asyncio.wait_for(ready.wait(), WAIT_S)
        sc = scenario(target=mqtt(mosquitto.url, subscribe="devices/{conn}/down", qos=1),
                      load={"connections": 2, "rate": 200, "duration": "500ms"})
        result = await run_async(sc, store=store)
    finally:
        task.cancel()
    assert result.summary["received"] == result.summary["sent"] == 100
    recv = store.events(result.run_id).filter(pl.col("kind") == "recv").collect()
    assert set(recv["topic"]) == {"devices/0/down", "devices/1/down"}


async def test_broker_down_at_start_is_one_clear_error(store: Store):
    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(TargetUnreachable, match=r"^target mqtt://127\.0\.0\.1:\d+ is "
                                                r"unreachable: .*refused"):
        await run_async(scenario(target=mqtt(url), load={"connections": 3, "rate": 10,
                                                           "duration": "1s"}), store=store)


def test_broker_down_at_start_from_the_cli_is_one_line_and_exit_2(tmp_path: Path):
    path = tmp_path / "down.yaml"
    path.write_text(yaml.safe_dump({
        "name": "down", "target": mqtt(f"mqtt://127.0.0.1:{free_port()}"),
        "load": {"connections": 2, "rate": 10, "duration": "1s"}}))
    done = subprocess.run([sys.executable, "-m", "streambench", "run", str(path), "--store",
                           str(tmp_path / "store")], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("streambench: error: target mqtt://127.0.0.1:")
    assert "unreachable" in lines[0]


async def test_broker_restart_mid_run_reconnects_and_completes(mosquitto: Mosquitto,
                                                               store: Store):
    received = asyncio.Event()

    def progress(p) -> None:
        if p.received >= 100:
            received.set()

    sc = scenario(target=mqtt(mosquitto.url, qos=1, reconnect={"initial": "50ms", "max": "200ms"}),
                  load={"connections": 3, "rate": 300, "duration": "2.5s", "timeout": "500ms"},
                  capture={"flush_every": "100ms", "redaction": {"allow": ["text"]}})
    run = asyncio.create_task(run_async(sc, store=store, on_progress=progress))
    await asyncio.wait_for(received.wait(), WAIT_S)
    await asyncio.to_thread(mosquitto.restart)
    result = await asyncio.wait_for(run, 30)
    assert result.status == "completed"
    s = result.summary
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]
    events = store.events(result.run_id).sort("ts").collect()
    per_conn = events.group_by("conn", "kind").len()
    connects = per_conn.filter(pl.col("kind") == "connect")["len"]
    assert connects.len() == 3
    assert (connects >= 2).all()  # every connection came back
    lost = events.filter((pl.col("kind") == "disconnect") & pl.col("error").str.contains("lost"))
    assert lost["conn"].n_unique() == 3  # the outage is in the events
    outage = events.filter((pl.col("kind") == "error")
                           & pl.col("status").is_in(["not_connected", "connect_failed",
                                                     "disconnected"]))
    assert outage.height > 0
    last_loss = lost["ts"].max()
    after = events.filter((pl.col("kind") == "recv") & (pl.col("ts") > last_loss))
    assert after.height > 50  # traffic flowed again after the broker came back


async def test_a_persistent_session_resumes_after_a_cut(mosquitto: Mosquitto, store: Store):
    sc = scenario(target=mqtt(mosquitto.url, qos=1, clean_session=False, mqtt_version="5",
                              reconnect={"initial": "20ms"}),
                  load={"connections": 2, "rate": 200, "duration": "1s"},
                  faults=[{"kind": "disconnect", "at": "400ms", "for": "100ms"}])
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    counts = kinds(events)
    assert counts[("connect", "open")] == 2
    assert counts[("connect", "session_present")] == 2
    assert counts[("fault", "disconnect")] == 2
    assert counts.get(("error", "disconnected"), 0) == 0  # in flight stays in flight
    s = result.summary
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]


async def test_credentials_come_from_env_secrets_and_never_reach_the_store(
        tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch):
    passwords = tmp_path / "passwd"
    await asyncio.to_thread(subprocess.run, ["mosquitto_passwd", "-b", "-c", str(passwords),
                                             "bench", "s3cret-pw"],
                            check=True, capture_output=True, timeout=30)
    passwords.chmod(0o644)
    with Mosquitto(tmp_path / "auth", extra_config=f"allow_anonymous false\n"
                   f"password_file {passwords}") as broker:
        broker.config_path.write_text(broker.config_path.read_text().replace(
            "allow_anonymous true\n", ""))
        broker.restart()
        monkeypatch.setenv("MQTT_USER", "bench")
        monkeypatch.setenv("MQTT_PASSWORD", "s3cret-pw")
        target = mqtt(broker.url, username="${MQTT_USER}", password="${MQTT_PASSWORD}")
        result = await run_async(scenario(target=target, load={"connections": 1, "rate": 50,
                                                               "duration": "200ms"}),
                                 store=store)
        assert result.summary["received"] == 10
        assert "s3cret-pw" not in str(store.manifest(result.run_id))
        monkeypatch.setenv("MQTT_PASSWORD", "wrong")
        with pytest.raises(TargetError, match=r"refused the connection: .*(not authorized|bad)"):
            await run_async(scenario(target=target, load={"connections": 1, "rate": 50,
                                                          "duration": "200ms"}), store=store)


async def test_the_last_will_is_published_when_a_connection_is_cut(mosquitto: Mosquitto,
                                                                   store: Store):
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="watcher") as watcher:
        await watcher.subscribe("wills/#", qos=1)
        sc = scenario(target=mqtt(mosquitto.url, will={"topic": "wills/{conn}",
                                                        "payload": "gone", "qos": 1}),
                      load={"connections": 2, "rate": 100, "duration": "600ms"},
                      faults=[{"kind": "disconnect", "at": "200ms", "fraction": 1.0}])
        run = asyncio.create_task(run_async(sc, store=store))
        got = set()
        async with asyncio.timeout(WAIT_S):
            async for message in watcher.messages:
                assert message.payload == b"gone"
                got.add(str(message.topic))
                if len(got) == 2:
                    break
        await run
    assert got == {"wills/0", "wills/1"}


async def test_stop_ends_an_mqtt_run_cleanly(mosquitto: Mosquitto, store: Store):
    control = RunControl()
    sc = scenario(target=mqtt(mosquitto.url), load={"connections": 2, "rate": 100,
                                                    "duration": "30s"},
                  capture={"flush_every": "100ms", "redaction": {"allow": ["text"]}})
    started = asyncio.Event()
    run = asyncio.create_task(run_async(sc, store=store, control=control,
                                        on_progress=lambda p: p.received and started.set()))
    await asyncio.wait_for(started.wait(), WAIT_S)
    control.stop("test")
    result = await asyncio.wait_for(run, WAIT_S)
    assert result.status == "aborted"
    s = result.summary
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]
