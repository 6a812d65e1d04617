"""proxy: what the fault proxy costs with no fault active, against the direct path.

Against a fast WebSocket echo server (Node's ``ws`` package, as ws_echo.py),
in the same run:

1. latency: a raw ``websockets`` client does sequential round trips (one
   message in flight) on one connection straight to the server and on one
   through ``streambench proxy`` (no faults), in alternating blocks so both
   see the same machine; prints each p50 and the overhead (goal <= 0.2 ms);
2. throughput: ``streambench run`` at ``--rate`` (default 20,000 msg/s) with
   full capture, direct and with ``target.via: proxy`` (the run starts its own
   proxy process), alternating, ``--repeat`` times each; prints the throughput
   of each (replies received per second, from the first intended send to the
   last reply: a path that falls behind stretches that span), the ratio of the
   medians proxy / direct (goal >= 0.90), and each run's latency p50.

Everything targets 127.0.0.1, every loop is bounded, processes are stopped
by their pid.

    python benchmarks/proxy.py [--rate 20000] [--seconds 4] [--connections 4]
                               [--round-trips 4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_echo import start_server  # a sibling benchmark script

GOAL_OVERHEAD_MS = 0.2
GOAL_RATIO = 0.9

ROUND_TRIPS = r"""
import asyncio, json, sys, time, uvloop
from websockets.asyncio.client import connect

async def block(ws, n, out):
    for _ in range(n):
        start = time.perf_counter_ns()
        await ws.send('{"text":"the quick brown fox jumps over the lazy dog","cid":"0-1"}')
        await ws.recv()
        out.append((time.perf_counter_ns() - start) / 1e6)

async def main(direct, proxied, total, size):
    times = {"direct": [], "proxy": []}
    async with connect(direct, compression=None) as a, connect(proxied, compression=None) as b:
        await block(a, 200, []); await block(b, 200, [])  # warm up both paths
        for _ in range(max(1, total // size)):
            await block(a, size, times["direct"])
            await block(b, size, times["proxy"])
    print(json.dumps(times))

uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""

SCENARIO = """\
name: proxy_bench
target: {{protocol: websocket, url: "{url}"{via}}}
load: {{connections: {connections}, rate: {rate}, duration: {seconds}s, timeout: 5s}}
message: {{body: {{text: "{{{{sentence}}}}", value: 1.5}}}}
capture: {{redaction: {{allow: [text, value]}}}}
"""


def start_proxy(port: int) -> tuple[subprocess.Popen[str], int]:
    """``streambench proxy`` (no faults) in front of 127.0.0.1:``port``; its listening port."""
    proc = subprocess.Popen([sys.executable, "-m", "streambench", "proxy", "--listen",
                             "127.0.0.1:0", "--upstream", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, int(ready["listen"].rpartition(":")[2])


def round_trips(direct: str, proxied: str, total: int) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, "-c", ROUND_TRIPS, direct, proxied, str(total), "100"],
                         capture_output=True, text=True, check=True, timeout=total / 50 + 60)
    times: dict[str, list[float]] = json.loads(out.stdout)
    return times


def run_at(url: str, *, via: bool, rate: float, connections: int, seconds: float,
           tmp: Path) -> dict[str, Any]:
    scenario = tmp / f"bench-{'proxy' if via else 'direct'}.yaml"
    scenario.write_text(SCENARIO.format(url=url, via=", via: proxy" if via else "",
                                        connections=connections, rate=rate, seconds=seconds))
    done = subprocess.run([sys.executable, "-m", "streambench", "run", str(scenario), "--store",
                           str(tmp / "store"), "--json", "--progress", "never", "--workers",
                           "1"], capture_output=True, text=True, timeout=seconds + 90,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def received_rate(summary: dict[str, Any], store: Path) -> float:
    """Replies per second from the first intended send to the last reply: a path that
    cannot keep up stretches the span (late replies count, but slowly)."""
    import polars as pl

    from streambench.capture.store import Store

    events = Store(str(store)).events(summary["run_id"]).filter(pl.col("kind") == "recv")
    span = events.select(n=pl.len(), first=pl.col("intended_ns").min(),
                         last=pl.col("ts").max().dt.epoch("ns")).collect().row(0)
    count, first, last = span
    return float(count) / ((last - first) / 1e9) if count and last > first else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20_000.0, help="offered msg/s")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--round-trips", type=int, default=4000, help="per path, latency part")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per path")
    args = parser.parse_args()
    server, port = start_server()
    proxy, proxy_port = start_proxy(port)
    direct_url = f"ws://127.0.0.1:{port}/echo"
    try:
        times = round_trips(direct_url, f"ws://127.0.0.1:{proxy_port}/echo", args.round_trips)
        p50_direct = statistics.median(times["direct"])
        p50_proxy = statistics.median(times["proxy"])
        overhead = p50_proxy - p50_direct
        print(f"round trip p50 ({len(times['direct'])} each, one in flight): direct "
              f"{p50_direct:.3f} ms, through the proxy {p50_proxy:.3f} ms")
        print(f"latency overhead p50: {overhead:+.3f} ms (goal <= {GOAL_OVERHEAD_MS} ms)")
        rates: dict[bool, list[float]] = {False: [], True: []}
        with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
            for _ in range(args.repeat):
                for via in (False, True):
                    summary = run_at(direct_url, via=via, rate=args.rate,
                                     connections=args.connections, seconds=args.seconds,
                                     tmp=Path(tmp))
                    rates[via].append(received_rate(summary, Path(tmp) / "store"))
                    print(f"  streambench run at {args.rate:,.0f}/s "
                          f"{'via proxy' if via else 'direct   '}: received "
                          f"{rates[via][-1]:>9,.0f}/s, p50 {summary['latency_ms']['p50']} ms, "
                          f"p99 {summary['latency_ms']['p99']} ms")
    finally:
        for proc in (proxy, server):
            proc.terminate()
            proc.wait(timeout=10)
    direct, proxied = statistics.median(rates[False]), statistics.median(rates[True])
    ratio = proxied / direct if direct else 0.0
    print(f"throughput (median of {args.repeat}): direct {direct:,.0f}/s, via proxy "
          f"{proxied:,.0f}/s")
    print(f"ratio proxy / direct: {ratio:.3f} (goal >= {GOAL_RATIO})")
    return 0 if overhead <= GOAL_OVERHEAD_MS and ratio >= GOAL_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
