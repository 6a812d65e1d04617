"""Every network fault kind in real runs through the proxy: effects on events, ground truth.

Runs against the built-in target (WebSocket, ``url: embedded``) and a real
mosquitto. Each run carries several faults in separate windows (a run costs
two child processes, so there are few); each test reads one kind's traces:
the events in its window, and its ground-truth row.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from streambench.api import run_async
from streambench.capture.store import Store
from tests.helpers import scenario
from tests.mosquitto import Mosquitto

S = 1_000_000_000


@dataclass
class Run:
    events: pl.DataFrame  # with ``t``: seconds from the schedule's zero (ts), ``at`` (intended)
    truth: pl.DataFrame  # with ``t0``/``t1``: seconds from the schedule's zero
    manifest: dict[str, Any]

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return self.truth.filter(pl.col("kind") == kind).to_dicts()

    def of(self, kind: str, status: str | None = None) -> pl.DataFrame:
        rows = self.events.filter(pl.col("kind") == kind)
        return rows if status is None else rows.filter(pl.col("status") == status)

    def timeline(self) -> pl.DataFrame:
        """Latency p50 per 100 ms of intended time (for failure messages)."""
        return self.of("recv").group_by(slot=(pl.col("at") * 10).floor() / 10).agg(
            p50=pl.col("latency_ms").median(), n=pl.len()).sort("slot")

    def latency_p50(self, start: float, end: float) -> float:
        recv = self.of("recv").filter(pl.col("at").is_between(start, end, closed="left"))
        return float(recv["latency_ms"].median())  # type: ignore[arg-type]


def earliest(times: pl.Series) -> float:
    """The smallest of some seconds (there must be one)."""
    value = times.min()
    assert isinstance(value, float), times
    return value


def execute(sc: Any, store: Store) -> Run:
    result = asyncio.run(run_async(sc, store=store))
    events = store.events(result.run_id).collect()
    zero = events.filter(pl.col("kind") == "send")["intended_ns"].min()
    assert isinstance(zero, int)
    events = events.with_columns(t=(pl.col("ts").dt.epoch("ns") - zero) / S,
                                 at=(pl.col("intended_ns") - zero) / S)
    truth = store.faults(result.run_id).collect().with_columns(
        t0=(pl.col("start").dt.epoch("ns") - zero) / S,
        t1=(pl.col("end").dt.epoch("ns") - zero) / S)
    return Run(events, truth, store.manifest(result.run_id))


def websocket(**sections: Any) -> Any:
    base: dict[str, Any] = {
        "target": {"url": "embedded", "reconnect": {"initial": "50ms", "max": "100ms"}},
        "load": {"connections": 2, "rate": 100, "duration": "5s", "timeout": "1s"},
    }
    return scenario(**{**base, **sections})


# -- the built-in target ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """latency, slicer and bandwidth downstream, then a reset into a refuse window."""
    return execute(websocket(seed=5, network_faults=[
        {"kind": "latency", "delay": "200ms", "jitter": "20ms", "direction": "downstream",
         "at": "500ms", "for": "800ms"},
        {"kind": "slicer", "size": 8, "delay": "1ms", "direction": "downstream", "at": "1.8s",
         "for": "500ms"},
        {"kind": "bandwidth", "rate": "2000B/s", "direction": "downstream", "at": "2.8s",
         "for": "500ms"},
        {"kind": "reset", "at": "4.3s", "direction": "downstream"},
        {"kind": "refuse", "at": "4.3s", "for": "500ms"},
    ], load={"connections": 2, "rate": 100, "duration": "5.5s", "timeout": "1s"}),
        Store(tmp_path_factory.mktemp("shaped") / "store"))


def test_latency_holds_replies_back_in_its_window(shaped: Run) -> None:
    assert shaped.latency_p50(0.0, 0.5) < 50
    assert 200 <= shaped.latency_p50(0.6, 1.2) < 1000, shaped.timeline()
    [row] = shaped.rows("latency")
    assert row["source"] == "network"
    assert row["conn"] is None
    assert row["detail"].startswith("latency 200ms +- 20ms downstream on 2 connections")
    assert row["t0"] == pytest.approx(0.5, abs=0.1)
    assert 1.45 <= row["t1"] < 2.0  # the last held reply left 200-220 ms after the window


def test_slicer_delays_replies_cut_into_slices(shaped: Run) -> None:
    assert shaped.latency_p50(1.85, 2.3) > shaped.latency_p50(1.6, 1.8) + 4
    [row] = shaped.rows("slicer")
    assert row["detail"].startswith("slicer 8+-0 B every 1ms downstream on 2 connections")
    assert row["t0"] == pytest.approx(1.8, abs=0.1)


def test_bandwidth_makes_replies_queue_up(shaped: Run) -> None:
    assert shaped.latency_p50(3.0, 3.3) > shaped.latency_p50(2.5, 2.8) + 20
    [row] = shaped.rows("bandwidth")
    assert row["t0"] == pytest.approx(2.8, abs=0.1)
    assert row["t1"] >= 3.3


def test_reset_cuts_connections_and_refuse_keeps_them_out(shaped: Run) -> None:
    lost = shaped.of("disconnect").filter(pl.col("t").is_between(4.2, 4.6))
    assert lost["conn"].n_unique() == 2  # both were reset at 4.3 s
    refused = shaped.of("error", "connect_failed").filter(pl.col("t").is_between(4.3, 4.9))
    assert refused.height >= 2
    assert refused["error"].str.ends_with("is unreachable: Connection refused").all(), \
        refused["error"].to_list()
    back = shaped.of("connect").filter(pl.col("t") > 4.3)
    assert earliest(back["t"]) >= 4.75  # nobody got back in before the window closed
    assert back["conn"].n_unique() == 2
    [reset] = shaped.rows("reset")
    assert reset["t0"] == pytest.approx(4.3, abs=0.1)
    assert reset["detail"] == "reset (RST) downstream on 2 connections"
    [refuse] = shaped.rows("refuse")
    assert (refuse["t0"], refuse["t1"]) == (pytest.approx(4.3, abs=0.1),
                                            pytest.approx(4.8, abs=0.1))


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A blackhole on one connection, close_after, and slow closes of the target's closes."""
    sc = websocket(seed=3, target={
        "url": "embedded", "reconnect": {"initial": "50ms", "max": "100ms"},
        "server": {"disconnect_every": "2s"}}, network_faults=[
        {"kind": "blackhole", "at": "1s", "for": "200ms", "share": 0.5},
        {"kind": "close_after", "bytes": 600, "direction": "upstream", "at": "1.2s",
         "for": "1s"},
        {"kind": "slow_close", "delay": "600ms", "direction": "downstream", "at": "2.5s"},
    ], load={"connections": 4, "rate": 100, "duration": "5s", "timeout": "1s"})
    return execute(sc, Store(tmp_path_factory.mktemp("broken") / "store"))


def test_blackhole_swallows_a_connection_for_good(broken: Run) -> None:
    # dark: no reply to anything sent after the window opened (a busy machine may time
    # out a reply on a live connection too, so timeouts alone do not tell)
    replied = broken.of("recv").filter(pl.col("at") > 1.1)["conn"].unique().to_list()
    dark = set(range(4)) - set(replied)
    assert 0 < len(dark) < 4  # share 0.5 of 4 connections
    for conn in dark:  # it worked until the window, then every message timed out
        mine = pl.col("conn") == conn
        assert broken.of("recv").filter(mine & (pl.col("at") < 0.9)).height > 0
        assert broken.of("timeout").filter(mine & (pl.col("at") > 1.1)).height > 0
    [row] = broken.rows("blackhole")
    assert row["t0"] == pytest.approx(1.0, abs=0.1)
    assert row["t1"] > 5.0  # the client never noticed: dark until the end of the run


def test_close_after_cuts_connections_once_they_sent_enough(broken: Run) -> None:
    cut = broken.of("disconnect", "1006").filter(pl.col("t").is_between(1.2, 2.5))
    assert cut.height >= 1  # 1006: no close frame, the TCP connection just ended
    [row] = broken.rows("close_after")
    assert 1.2 <= row["t0"] <= 2.3


def test_slow_close_delays_the_targets_close(broken: Run) -> None:
    closes = broken.truth.filter((pl.col("source") == "target")
                                 & (pl.col("kind") == "disconnect") & (pl.col("t0") > 2.5))
    first = closes["t0"].min()
    assert isinstance(first, float)
    seen = broken.of("disconnect", "1011").filter(pl.col("t") > first)["t"]
    assert seen.len() >= 1
    assert earliest(seen) - first >= 0.55  # the target's FIN came 600 ms late
    assert broken.of("error", "not_connected").filter(pl.col("t").is_between(
        first, first + 0.6)).height > 0  # meanwhile the client could not send
    assert broken.rows("slow_close")[0]["detail"].startswith("slow_close 600ms downstream")


def test_workers_share_one_proxy_and_its_clock(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    sc = websocket(network_faults=[{"kind": "latency", "delay": "150ms", "at": "500ms",
                                    "for": "500ms", "direction": "downstream"}],
                   load={"connections": 4, "rate": 200, "duration": "1.5s"})
    result = execute_workers(sc, store, workers=2)
    events = store.events(result).collect()
    zero = events.filter(pl.col("kind") == "send")["intended_ns"].min()
    assert isinstance(zero, int)
    recv = events.filter(pl.col("kind") == "recv").with_columns(
        at=(pl.col("intended_ns") - zero) / S)
    slow = recv.filter(pl.col("at").is_between(0.55, 0.95))
    assert set(slow["worker"].to_list()) == {0, 1}  # both shards' connections went through it
    assert slow["latency_ms"].median() >= 150  # type: ignore[operator]
    assert recv.filter(pl.col("at") < 0.45)["latency_ms"].median() < 50  # type: ignore[operator]
    [row] = store.faults(result).collect().to_dicts()
    assert row["detail"].startswith("latency 150ms downstream on 4 connections")


def execute_workers(sc: Any, store: Store, *, workers: int) -> str:
    from streambench.api import execute

    result = execute(sc, store=store, workers=workers, handle_signals=False)
    assert result.status == "completed"
    return result.run_id


def test_a_clean_run_through_the_proxy_is_clean(tmp_path: Path) -> None:
    run = execute(websocket(target={"url": "embedded", "via": "proxy"},
                            load={"connections": 2, "rate": 100, "duration": "1s"}),
                  Store(tmp_path / "store"))
    assert run.of("recv").height == run.of("send").height == 100
    assert run.of("error").height == run.of("timeout").height == 0
    assert run.truth.height == 0
    assert run.manifest["scenario"]["target"]["via"] == "proxy"


# -- a real mosquitto -------------------------------------------------------------------------
def mqtt(broker: Mosquitto, **sections: Any) -> Any:
    return scenario(**{
        "target": {"protocol": "mqtt", "url": broker.url, "qos": 1,
                   "reconnect": {"initial": "50ms", "max": "100ms"}},
        "load": {"connections": 2, "rate": 100, "duration": "4s", "timeout": "1s"},
        **sections})


def test_mqtt_through_the_proxy_latency_bandwidth_slicer_reset_refuse(mosquitto: Mosquitto,
                                                                      tmp_path: Path) -> None:
    run = execute(mqtt(mosquitto, seed=2, network_faults=[
        {"kind": "latency", "delay": "150ms", "direction": "upstream", "at": "500ms",
         "for": "400ms"},
        {"kind": "bandwidth", "rate": "4KB/s", "direction": "both", "at": "1.2s",
         "for": "400ms"},
        {"kind": "slicer", "size": 16, "delay": "1ms", "at": "2.4s", "for": "300ms"},
        {"kind": "reset", "at": "3.1s", "direction": "upstream"},
        {"kind": "refuse", "at": "3.1s", "for": "400ms"},
    ]), Store(tmp_path / "store"))
    assert run.latency_p50(0.0, 0.5) < 50, run.timeline()
    assert 150 <= run.latency_p50(0.55, 0.85) < 1000, run.timeline()
    assert run.latency_p50(1.4, 1.6) > run.latency_p50(1.0, 1.2) + 20, run.timeline()
    assert run.latency_p50(2.45, 2.7) > run.latency_p50(2.2, 2.4) + 5, run.timeline()
    assert run.of("disconnect").filter(pl.col("t").is_between(3.0, 3.4))["conn"].n_unique() == 2
    refused = run.of("error", "connect_failed").filter(pl.col("t").is_between(3.1, 3.6))
    assert refused.height >= 2
    assert earliest(run.of("connect").filter(pl.col("t") > 3.1)["t"]) >= 3.45
    kinds = {r["kind"]: r for r in run.truth.to_dicts()}
    assert set(kinds) == {"latency", "bandwidth", "slicer", "reset", "refuse"}
    assert kinds["latency"]["t0"] == pytest.approx(0.5, abs=0.1)
    assert kinds["reset"]["t0"] == pytest.approx(3.1, abs=0.1)


def test_mqtt_through_the_proxy_blackhole_close_after_slow_close(mosquitto: Mosquitto,
                                                                 tmp_path: Path) -> None:
    will = {"topic": "streambench/0", "payload": "gone"}  # conn 1's will, read by conn 0
    run = execute(mqtt(mosquitto, seed=5, target={
        "protocol": "mqtt", "url": mosquitto.url, "qos": 1, "will": will,
        "reconnect": {"initial": "50ms", "max": "100ms"}},
        load={"connections": 2, "rate": 100, "duration": "4s", "timeout": "1s",
              "heartbeat": "1s"},
        faults=[{"kind": "disconnect", "at": "3s", "fraction": 0.5, "for": "800ms"}],
        network_faults=[
            {"kind": "blackhole", "at": "500ms", "for": "500ms", "direction": "downstream",
             "share": 0.5},
            {"kind": "close_after", "bytes": 2000, "direction": "upstream", "at": "1.5s",
             "for": "1s"},
            {"kind": "slow_close", "delay": "500ms", "direction": "upstream", "at": "2.8s",
             "for": "700ms"},
        ]), Store(tmp_path / "store"))
    # seed 5 picks one of the two first connections: dark until its keep-alive gives up
    lost = pl.concat([run.of("timeout"), run.of("error", "disconnected")])
    dark = lost.filter(pl.col("at").is_between(0.5, 1.0))["conn"].unique()
    assert dark.len() == 1, run.events.filter(~pl.col("kind").is_in(["send", "recv"]))
    gave_up = run.of("disconnect").filter(pl.col("conn") == dark[0])
    assert gave_up["error"][0].startswith("keepalive timeout")
    assert 0.5 < gave_up["t"][0] < 2.0
    [blackhole] = run.rows("blackhole")
    assert blackhole["t0"] == pytest.approx(0.5, abs=0.1)
    assert blackhole["t1"] == pytest.approx(gave_up["t"][0], abs=0.1)  # until it was closed
    cut = run.of("disconnect").filter(pl.col("t").is_between(1.5, 2.6))
    assert cut.height >= 1
    [close_after] = run.rows("close_after")
    assert 1.5 <= close_after["t0"] <= 2.5
    # seed 5's client disconnect picks conn 1 at 3 s; the broker hears of it 500 ms late
    wills = run.of("error", "garbage").filter((pl.col("t") > 3.0) & (pl.col("conn") == 0))
    assert earliest(wills["t"]) >= 3.45
    [slow] = run.rows("slow_close")
    assert slow["t0"] == pytest.approx(3.0, abs=0.15)
    assert slow["t1"] - slow["t0"] == pytest.approx(0.5, abs=0.1)
