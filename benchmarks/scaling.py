"""scaling: the highest sustained echo rate with 1 worker vs N workers (``--workers``).

Against the Node ``ws`` echo server that ws_echo.py uses (installed from the
npm registry into benchmarks/.node on first use), ``streambench run`` with
full capture is searched for the highest rate it sustains with ``--workers
1`` and then with ``--workers N``: sustained means achieved >= 97% of the
intended rate and >= 99% of sent received (ws_echo's criterion). Prints each
step, both rates and their ratio (goal: >= 1.7 with 2 workers).

Read the ratio against the machine: the echo server, the driver and every
worker share its cores. On a 2-core machine two workers and a busy Node
process compete for 2 cores, so the ratio measures that contention as much
as streambench; the script prints the core count next to the ratio.

Everything targets 127.0.0.1, every search is bounded (``--steps``), and the
server is stopped by its pid.

    python benchmarks/scaling.py [--workers 2] [--seconds 4] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ws_echo import start_server, sustained  # noqa: E402

GOAL = 1.7
SCENARIO = """\
name: scaling
target: {{protocol: websocket, url: "{url}"}}
load: {{connections: {connections}, rate: 1000, duration: {seconds}s, timeout: 5s}}
message: {{body: {{text: "{{{{sentence}}}}", value: 1.5}}}}
capture: {{redaction: {{allow: [text, value]}}}}
"""


def run_at(rate: float, *, workers: int, scenario: Path, store: str, seconds: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "streambench", "run", str(scenario), "--rate", f"{rate:.0f}",
         "--workers", str(workers), "--store", store, "--json", "--progress", "never"],
        capture_output=True, text=True, timeout=seconds + 90, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return json.loads(done.stdout)


def highest(*, workers: int, start: float, steps: int, scenario: Path, store: str,
            seconds: float) -> float:
    """Double from ``start`` until a rate is not sustained, then bisect; ``steps`` runs at most."""
    best, low, high = 0.0, 0.0, None
    rate = start
    for _ in range(steps):
        summary = run_at(rate, workers=workers, scenario=scenario, store=store, seconds=seconds)
        ok = sustained(summary)
        print(f"  {workers} worker(s) at {rate:>9,.0f}/s: achieved "
              f"{summary['achieved_rate']:>9,.0f}/s ({summary['achieved_ratio']:.1%}), "
              f"received {summary['received'] / max(summary['sent'], 1):.2%}, "
              f"p99 {summary['latency_ms']['p99']} ms, "
              f"lag p99 {summary['schedule_lag_ms']['p99']} ms -> "
              f"{'ok' if ok else 'not sustained'}", flush=True)
        if ok:
            best, low = max(best, rate), rate
        else:
            high = rate
        rate = rate * 2 if high is None else (low + high) / 2 if low else rate * 0.6
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="compared with 1 worker")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--start", type=float, default=10_000.0, help="first rate tried")
    parser.add_argument("--steps", type=int, default=7, help="runs per search")
    args = parser.parse_args()
    os.environ.setdefault("STREAMBENCH_HASH_KEY", "benchmark-only-key-0123456789abcdef")
    server, port = start_server()
    url = f"ws://127.0.0.1:{port}/echo"
    found = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scenario = Path(tmp) / "scaling.yaml"
            scenario.write_text(SCENARIO.format(url=url, connections=args.connections,
                                                seconds=args.seconds))
            for workers in (1, args.workers):
                found[workers] = highest(workers=workers, start=args.start, steps=args.steps,
                                         scenario=scenario, store=f"{tmp}/store",
                                         seconds=args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=10)
    one, many = found[1], found[args.workers]
    print(f"sustained with full capture: 1 worker {one:,.0f} msg/s, "
          f"{args.workers} workers {many:,.0f} msg/s")
    ratio = many / one if one else float("nan")
    print(f"ratio {args.workers} workers / 1 worker: {ratio:.2f} (goal >= {GOAL}) on "
          f"{os.cpu_count()} cores shared with the echo server")


if __name__ == "__main__":
    main()
