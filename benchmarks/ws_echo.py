"""ws_echo: the highest open-model rate streambench sustains vs a raw websockets client.

Against a fast echo server (Node's ``ws`` package, installed from the npm
registry on first use into benchmarks/.node), in the same run:

1. raw: a minimal pipelined ``websockets`` client (uvloop, a window of
   messages in flight per connection) counts round trips/s for a few seconds;
2. streambench: ``streambench run --workers 1`` (one client core, like the
   raw client) at fixed rates with full capture (payloads, redaction,
   Parquet), searching by bisection for

   * the highest rate it **sustains**: achieved >= 97% of intended and >= 99%
     of sent received (goal: >= 0.8 of raw);
   * the highest **lag-bounded** rate: sustained *and* schedule lag p99 <= 5 ms
     (``--lag-ms``), i.e. every message still leaves within 5 ms of its
     intended time, so the latencies measured there are the target's, not the
     client's (goal: >= 0.7 of raw).

Prints each run, both rates and their ratios to raw. Everything targets
127.0.0.1, every run is bounded (``--seconds`` plus a timeout), and the server
is stopped by its pid.

    python benchmarks/ws_echo.py [--seconds 4] [--connections 4] [--steps 6] [--lag-ms 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / ".node"
GOAL = 0.8  # sustained / raw
LAG_GOAL = 0.7  # lag-bounded / raw

RAW_CLIENT = r"""
import asyncio, sys, time, uvloop
from websockets.asyncio.client import connect

async def one(url, seconds, window, counts):
    async with connect(url, compression=None, max_size=None) as ws:
        message = ('{"text":"the quick brown fox jumps over the lazy dog","value":1.5,'
                   '"cid":"0-1","seq":1}')
        slots = asyncio.Semaphore(window)
        async def receive():
            async for _ in ws:
                counts[0] += 1
                slots.release()
        reader = asyncio.create_task(receive())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await slots.acquire()
            await ws.send(message)
        reader.cancel()

async def main(url, connections, seconds, window):
    counts = [0]
    await asyncio.gather(*(one(url, seconds, window, counts) for _ in range(connections)))
    print(counts[0] / seconds)

uvloop.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
"""

SCENARIO = """\
name: ws_echo
target: {{protocol: websocket, url: "{url}"}}
load: {{connections: {connections}, rate: 1000, duration: {seconds}s, timeout: 5s}}
message: {{body: {{text: "{{{{sentence}}}}", value: 1.5}}}}
capture: {{redaction: {{allow: [text, value]}}}}
"""


def ensure_node_ws() -> Path:
    if shutil.which("node") is None:
        sys.exit("ws_echo: needs Node.js (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "ws").exists():
        print("installing the npm package ws into benchmarks/.node ...", file=sys.stderr)
        subprocess.run(["npm", "install", "--silent", "--no-save", "--prefix", str(NODE_DIR),
                        "ws@8"], check=True)
    return NODE_DIR


def start_server(processes: int = 1) -> tuple[subprocess.Popen[str], int]:
    """The Node echo server on 127.0.0.1 (a cluster of ``processes`` workers past 1)."""
    env = {**os.environ, "NODE_PATH": str(ensure_node_ws() / "node_modules")}
    proc = subprocess.Popen(["node", str(HERE / "ws_echo_server.js"), "0", str(processes)],
                            env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        sys.exit(f"ws_echo: the node server did not start: {line!r}")
    return proc, int(line.split()[1])


def raw_rate(url: str, connections: int, seconds: float, window: int) -> float:
    out = subprocess.run([sys.executable, "-c", RAW_CLIENT, url, str(connections),
                          str(seconds), str(window)], capture_output=True, text=True,
                         check=True, timeout=seconds + 30)
    return float(out.stdout.strip())


def streambench_at(rate: float, scenario: Path, store: str, seconds: float,
                   duration: float | None = None) -> dict:
    extra = ["--duration", f"{duration}s"] if duration is not None else []
    done = subprocess.run([sys.executable, "-m", "streambench", "run", str(scenario), "--rate",
                           f"{rate:.0f}", "--store", store, "--json", "--progress", "never",
                           *extra,
                           "--workers", "1"],  # one client core, like the raw client
                          capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return json.loads(done.stdout)


def cpu_per_1000(rate: float, scenario: Path, store: str, seconds: float) -> float:
    """Marginal CPU seconds per 1,000 echoed messages at ``rate`` (start-up excluded)."""
    spent = []
    for length in (seconds, 3 * seconds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = streambench_at(rate, scenario, store, length, duration=length)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        spent.append((cpu, summary["received"]))
    (cpu1, n1), (cpu3, n3) = spent
    return (cpu3 - cpu1) / max(n3 - n1, 1) * 1000


def sustained(summary: dict) -> bool:
    sent = summary["sent"] or 1
    return summary["achieved_ratio"] >= 0.97 and summary["received"] / sent >= 0.99


def lag_bounded(summary: dict, lag_ms: float) -> bool:
    lag = summary["schedule_lag_ms"]["p99"]
    return sustained(summary) and lag is not None and lag <= lag_ms


def search(ok: Callable[[float], bool], *, start: float, ceiling: float, steps: int) -> float:
    """The highest rate ``ok`` accepts, by bisection from ``start`` (at most ``steps`` runs)."""
    best, low, high, rate = 0.0, 0.0, ceiling, start
    for _ in range(steps):
        if ok(rate):
            best, low = max(best, rate), rate
        else:
            high = rate
        rate = (low + high) / 2 if low else rate * 0.6
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=100, help="raw client's messages in flight")
    parser.add_argument("--steps", type=int, default=6, help="rates tried by each search")
    parser.add_argument("--lag-ms", type=float, default=5.0,
                        help="schedule lag p99 bound of the lag-bounded rate")
    parser.add_argument("--cpu-rate", type=float, help="also measure CPU per message here")
    parser.add_argument("--cpu-only", action="store_true", help="skip the rate searches")
    parser.add_argument("--repeat", type=int, default=3, help="CPU measurements (median)")
    args = parser.parse_args()
    server, port = start_server()
    url = f"ws://127.0.0.1:{port}/echo"
    try:
        if args.cpu_rate:
            with tempfile.TemporaryDirectory() as tmp:
                scenario = Path(tmp) / "ws_echo.yaml"
                scenario.write_text(SCENARIO.format(url=url, connections=args.connections,
                                                    seconds=args.seconds))
                figures = [cpu_per_1000(args.cpu_rate, scenario, f"{tmp}/store", args.seconds)
                           for _ in range(args.repeat)]
            print(f"streambench CPU at {args.cpu_rate:,.0f} msg/s: "
                  f"{statistics.median(figures):.3f} s per 1,000 echoed messages (median of "
                  f"{', '.join(f'{f:.3f}' for f in figures)})")
        if args.cpu_only:
            return
        raw = raw_rate(url, args.connections, args.seconds, args.window)
        print(f"raw websockets (pipelined, window {args.window}, {args.connections} conns, "
              f"one core): {raw:,.0f} round trips/s")
        with tempfile.TemporaryDirectory() as tmp:
            scenario = Path(tmp) / "ws_echo.yaml"
            scenario.write_text(SCENARIO.format(url=url, connections=args.connections,
                                                seconds=args.seconds))

            def measure(rate: float, label: str, verdict: Callable[[dict], bool]) -> bool:
                summary = streambench_at(rate, scenario, f"{tmp}/store", args.seconds)
                ok = verdict(summary)
                print(f"  {label} at {rate:>9,.0f}/s: achieved "
                      f"{summary['achieved_rate']:>9,.0f}/s ({summary['achieved_ratio']:.1%}), "
                      f"received {summary['received'] / max(summary['sent'], 1):.2%}, "
                      f"p99 {summary['latency_ms']['p99']} ms, "
                      f"lag p99 {summary['schedule_lag_ms']['p99']} ms -> "
                      f"{'ok' if ok else 'no'}")
                return ok

            best = search(lambda r: measure(r, "sustained?", sustained), start=raw * 0.8,
                          ceiling=raw * 1.1, steps=args.steps)
            bounded = search(lambda r: measure(r, f"lag p99 <= {args.lag_ms:g} ms?",
                                               lambda s: lag_bounded(s, args.lag_ms)),
                             start=(best or raw) * 0.8, ceiling=best or raw, steps=args.steps)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"streambench sustained: {best:,.0f} msg/s with full capture")
    print(f"streambench lag-bounded (schedule lag p99 <= {args.lag_ms:g} ms): {bounded:,.0f} msg/s")
    print(f"ratio sustained / raw: {best / raw:.2f} (goal >= {GOAL})")
    print(f"ratio lag-bounded / raw: {bounded / raw:.2f} (goal >= {LAG_GOAL})")


if __name__ == "__main__":
    main()
