"""MQTT publish -> receive messages/s through a local mosquitto, streambench vs raw aiomqtt.

    python benchmarks/mqtt_echo.py [--messages 10000] [--seconds 3] [--qos 1] [--profile]

Starts its own mosquitto on a free port of 127.0.0.1 (config and log in a
temporary directory, stopped by pid at the end) and measures, in the same run,
one client process on one core, the broker's fan-out as the echo (publish and
subscribe on the same topic):

* raw aiomqtt, the minimal loop: ``await client.publish(...)`` per message,
  a receive task counting ``client.messages``;
* raw aiomqtt, pipelined: publishes in batches of 100 with ``asyncio.gather``;
* streambench, ``mqtt_engine: aiomqtt`` and ``mqtt_engine: wire`` (the
  default): a full ``run_async`` (open-model schedule, capture, redaction,
  Parquet) at an offered rate above what the engine can do, so the figure is
  its ceiling: received messages / (last receipt - first send).

Prints messages/s, the ratios to the best raw loop (goal >= 0.8) and the
wire engine against the 15,000 msg/s per core goal. ``--profile`` adds a
cProfile of the minimal raw loop: where aiomqtt's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.mosquitto

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.scenario.model import Scenario
from tests.mosquitto import Mosquitto

GOAL_RATIO = 0.8
GOAL_WIRE = 15_000
PAYLOAD = b'{"text":"hello from the benchmark, a short sentence","value":1.5,"cid":"0-%d","seq":%d}'


async def raw_aiomqtt(port: int, *, messages: int, qos: int, batch: int) -> float:
    """Messages/s of a plain aiomqtt client publishing to the topic it subscribes to."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"raw-{batch}",
                              max_queued_incoming_messages=0) as client:
        await client.subscribe("bench/raw", qos=qos)
        done = asyncio.Event()
        got = 0

        async def receive() -> None:
            nonlocal got
            async for _ in client.messages:
                got += 1
                if got == messages:
                    done.set()
                    return

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        for first in range(0, messages, batch):
            sends = [client.publish("bench/raw", PAYLOAD % (i, i), qos=qos)
                     for i in range(first, min(first + batch, messages))]
            if batch == 1:
                await sends[0]
            else:
                await asyncio.gather(*sends)
        await asyncio.wait_for(done.wait(), 60)
        elapsed = time.perf_counter() - started
        receiver.cancel()
    return messages / elapsed


async def streambench(url: str, *, engine: str, rate: float, seconds: float, qos: int,
                      store: Store) -> tuple[float, int, int]:
    """(received/s, sent, received) of one full streambench run."""
    scenario = Scenario.model_validate({
        "name": f"mqtt-echo-{engine}",
        "target": {"protocol": "mqtt", "url": url, "qos": qos, "mqtt_engine": engine,
                   "publish": "bench/sb/{conn}"},
        "load": {"connections": 1, "rate": rate, "duration": seconds, "timeout": "20s"},
        "message": {"body": {"text": "hello from the benchmark, a short sentence",
                             "value": 1.5}},
        "capture": {"redaction": {"allow": ["text", "value"]}},
    })
    result = await run_async(scenario, store=store)
    events = store.events(result.run_id).select("kind", "ts").collect()
    first_send = events.filter(pl.col("kind") == "send")["ts"].min()
    last_recv = events.filter(pl.col("kind") == "recv")["ts"].max()
    span = (last_recv - first_send).total_seconds()
    return result.summary["received"] / span, result.summary["sent"], \
        result.summary["received"]


def profile_raw(port: int, *, messages: int, qos: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    _run(raw_aiomqtt(port, messages=messages, qos=qos, batch=1))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def _run(coro):  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="per raw loop")
    parser.add_argument("--seconds", type=float, default=3.0, help="per streambench run")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    parser.add_argument("--profile", action="store_true", help="cProfile the raw loop")
    args = parser.parse_args()
    os.environ.setdefault("STREAMBENCH_HASH_KEY", "benchmark-only-key-0123456789abcdef")
    # aiomqtt warns on every publish once more than 10 are pending (the gathered loop)
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        store = Store(str(Path(tmp) / "store"))
        figures = {
            "raw aiomqtt, await each publish": _run(raw_aiomqtt(
                broker.port, messages=args.messages, qos=args.qos, batch=1)),
            "raw aiomqtt, gather 100 publishes": _run(raw_aiomqtt(
                broker.port, messages=args.messages, qos=args.qos, batch=100)),
        }
        raw_best = max(figures.values())
        runs = {"aiomqtt": 20_000.0, "wire": 40_000.0}  # offered: above each engine's ceiling
        for engine, rate in runs.items():
            per_s, sent, received = _run(streambench(
                broker.url, engine=engine, rate=rate, seconds=args.seconds, qos=args.qos,
                store=store))
            figures[f"streambench, mqtt_engine={engine}"] = per_s
            if received != sent:
                print(f"  note: {engine}: {sent - received} of {sent} not received")
        print(f"MQTT QoS {args.qos} publish -> receive through mosquitto on 127.0.0.1, "
              "one client process")
        for name, per_s in figures.items():
            print(f"  {name:<38} {per_s:>9,.0f} msg/s   {per_s / raw_best:5.2f} x best raw")
        aiomqtt_ratio = figures["streambench, mqtt_engine=aiomqtt"] / raw_best
        wire = figures["streambench, mqtt_engine=wire"]
        print(f"goal streambench(aiomqtt) >= {GOAL_RATIO} x raw: {aiomqtt_ratio:.2f} "
              f"{'ok' if aiomqtt_ratio >= GOAL_RATIO else 'MISSED'}")
        print(f"goal wire engine >= {GOAL_WIRE:,} msg/s per core: {wire:,.0f} "
              f"{'ok' if wire >= GOAL_WIRE else 'MISSED'}")
        if args.profile:
            print(profile_raw(broker.port, messages=min(args.messages, 5000), qos=args.qos))


if __name__ == "__main__":
    main()
