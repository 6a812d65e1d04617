"""fanout: fan-out deliveries/s one streambench client core receives, vs a raw websockets client.

One sender and ``--receivers`` (1,000) receivers in one room of the built-in
target's broadcast mode (``streambench serve``, its own process, stopped by
its pid): every message the sender sends is relayed to every receiver. All on
127.0.0.1, every run bounded (``--seconds`` plus a timeout).

1. raw: a minimal ``websockets`` client (uvloop, one process): the receivers
   only count frames; the sender keeps ``--window`` messages in flight (as seen
   by one receiver). Deliveries/s received, and per CPU second of its process.
2. streambench: ``streambench run --workers 1`` (one client process) of a
   fan-out scenario (``expect: fanout``, ``fanout.senders: 1``) at rising
   message rates, with full capture: a ``delivery`` row per receiver and
   message with its latency from the intended send time, written to Parquet.
   For each rate: the share delivered, deliveries/s (from the first send to the
   last delivery, so a client falling behind stretches it), latency p50/p99,
   and deliveries per CPU second of the client process.

The figure is the best deliveries/s at which >= 99% were delivered and the
latency p99 stayed under ``--p99-ms``; it is printed per client core (CPU
second) as well, with the ratio to raw. Goal: >= 50,000 deliveries/s per
client core.

    python benchmarks/fanout.py [--receivers 1000] [--seconds 4] [--rates 10,25,50,75,100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streambench.testing.processes import stop_process

GOAL_PER_CORE = 50_000.0

RAW_CLIENT = r"""
import asyncio, sys, time, uvloop
from websockets.asyncio.client import connect

async def main(url, receivers, seconds, window):
    counts = [0] * receivers
    conns = []
    gate = asyncio.Semaphore(200)
    async def open_one():
        async with gate:
            return await connect(url, compression=None, max_size=None, ping_interval=None)
    conns = await asyncio.gather(*(open_one() for _ in range(receivers)))
    sender = await connect(url, compression=None, max_size=None, ping_interval=None)
    stop = asyncio.Event()
    slots = asyncio.Semaphore(window)
    async def receive(i, ws):
        async for _ in ws:
            counts[i] += 1
            if i == 0:
                slots.release()
    readers = [asyncio.create_task(receive(i, ws)) for i, ws in enumerate(conns)]
    message = '{"text":"the quick brown fox jumps over the lazy dog","cid":"0-1"}'
    cpu0, t0 = time.process_time(), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        await slots.acquire()
        await sender.send(message)
    total = sum(counts)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    for task in readers:
        task.cancel()
    print(total / wall, total / cpu)

uvloop.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
"""

SCENARIO = """\
name: fanout_bench
target: {{url: "{url}", connect_timeout: 30s}}
fanout: {{senders: 1}}
load: {{connections: {connections}, rate: 10, duration: {seconds}s, timeout: 30s}}
message: {{body: {{text: "{{{{sentence}}}}"}}, expect: fanout}}
capture: {{redaction: {{allow: [text]}}}}
"""


def start_target() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "streambench", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, ready["ws_url"].rsplit("/", 1)[0] + "/broadcast/bench"


def raw_rate(url: str, receivers: int, seconds: float, window: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", RAW_CLIENT, url, str(receivers), str(seconds),
                          str(window)], capture_output=True, text=True, check=True,
                         timeout=seconds + 120)
    per_s, per_cpu_s = out.stdout.split()
    return float(per_s), float(per_cpu_s)


def streambench_at(rate: float, scenario: Path, store: str, seconds: float) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "streambench", "run", str(scenario), "--rate",
                           f"{rate:g}", "--store", store, "--json", "--progress", "never",
                           "--workers", "1"], capture_output=True, text=True,
                          timeout=seconds + 180, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-2000:])
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return measured(json.loads(done.stdout)["run_id"], store, cpu)


def measured(run_id: str, store: str, cpu: float) -> dict[str, float]:
    import polars as pl

    import streambench

    events = streambench.Store(store).events(run_id)
    row = events.select(
        sent=(pl.col("kind") == "notify").sum(),
        delivered=(pl.col("kind") == "delivery").sum(),
        missed=((pl.col("kind") == "timeout") & (pl.col("status") == "delivery")).sum(),
        first=pl.col("ts").filter(pl.col("kind") == "notify").min(),
        last=pl.col("ts").filter(pl.col("kind") == "delivery").max(),
        p50=pl.col("latency_ms").filter(pl.col("kind") == "delivery").quantile(0.5),
        p99=pl.col("latency_ms").filter(pl.col("kind") == "delivery").quantile(0.99),
    ).collect().row(0, named=True)
    span = (row["last"] - row["first"]).total_seconds() if row["last"] else float("inf")
    expected = row["delivered"] + row["missed"]
    # The client's CPU while it delivered, from its health rows (about one a second):
    # start-up (imports, connecting 1,000 sockets) and the final write are left out.
    health = streambench.Store(store).health(run_id).filter(
        (pl.col("source") == "client") & (pl.col("ts") > row["first"])
        & (pl.col("ts") - pl.duration(seconds=pl.col("interval_s")) < row["last"])
    ).select(pl.col("cpu_s").sum(), pl.col("interval_s").sum()).collect().row(0)
    active_cpu, active_wall = health
    return {"delivered": row["delivered"], "ratio": row["delivered"] / max(expected, 1),
            "per_s": row["delivered"] / span, "p50": row["p50"] or 0.0,
            "p99": row["p99"] or 0.0, "cpu": cpu, "busy": active_cpu / max(active_wall, 1e-9),
            "per_cpu_s": row["delivered"] / max(active_cpu, 1e-9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", default="10,25,50,75,100",
                        help="messages/s the sender sends (x receivers = deliveries/s)")
    parser.add_argument("--window", type=int, default=20, help="raw sender's messages in flight")
    args = parser.parse_args()
    target, url = start_target()
    try:
        raw, raw_cpu = raw_rate(url, args.receivers, args.seconds, args.window)
        print(f"raw websockets ({args.receivers} receivers, one process): {raw:,.0f} "
              f"deliveries/s, {raw_cpu:,.0f} per CPU second")
        best: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            scenario = Path(tmp) / "fanout.yaml"
            scenario.write_text(SCENARIO.format(url=url, connections=args.receivers + 1,
                                                seconds=args.seconds))
            for rate in (float(r) for r in args.rates.split(",")):
                started = time.monotonic()
                m = streambench_at(rate, scenario, f"{tmp}/store", args.seconds)
                ok = m["ratio"] >= 0.99
                print(f"  {rate:>5g} msg/s x {args.receivers}: delivered {m['ratio']:.2%}, "
                      f"{m['per_s']:>9,.0f} deliveries/s, p50 {m['p50']:.1f} ms, "
                      f"p99 {m['p99']:.1f} ms, client busy {m['busy']:.0%} "
                      f"({m['per_cpu_s']:,.0f} per CPU s; whole process {m['cpu']:.1f} CPU s), "
                      f"run {time.monotonic() - started:.0f} s"
                      f" -> {'ok' if ok else 'no'}")
                if ok and m["per_s"] > best.get("per_s", 0.0):
                    best = m
    finally:
        stop_process(target)
    if not best:
        print("streambench: no rate sustained")
        return
    print(f"streambench sustained: {best['per_s']:,.0f} deliveries/s on one client process "
          f"({best['per_cpu_s']:,.0f} per client CPU second), every delivery captured with "
          "its latency")
    print(f"ratio to raw (deliveries/s): {best['per_s'] / raw:.2f}; per CPU second: "
          f"{best['per_cpu_s'] / raw_cpu:.2f}")
    print(f"goal: >= {GOAL_PER_CORE:,.0f} deliveries/s per client core -> "
          f"{'met' if best['per_cpu_s'] >= GOAL_PER_CORE else 'not met'}")


if __name__ == "__main__":
    main()
