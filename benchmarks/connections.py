"""connections: hold many WebSocket connections open against the embedded target.

Opens ``--connections`` (default 10,000) connections to the built-in target,
holds them ``--hold`` seconds (default 60) at a low message rate with
heartbeats, and prints:

* connect time and rate, as the target saw them (its open descriptors);
* client RSS per connection: (peak RSS of the load generator while holding -
  its RSS before the run) / connections; the load generator is this process
  with ``--workers 1``, else this process and its worker processes;
* target RSS, idle and holding the connections (per connection too);
* p50/p99 latency (from the intended send time) and the run's counts.

Everything is on 127.0.0.1, the run stops by itself, and the processes it
starts (the target, workers) are ended by the run engine by their pids. The
open-file soft limit is raised to the hard limit first; each connection
costs one descriptor here and one in the target, so ``ulimit -Hn`` must be
above the connection count (see docs/scale.md).

    python benchmarks/connections.py [--connections 10000] [--hold 60] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from streambench.api import execute  # noqa: E402
from streambench.capture.store import Store  # noqa: E402
from streambench.generate.scale.shards import raise_open_files  # noqa: E402
from streambench.scenario.model import Scenario  # noqa: E402

MB = 1 << 20


class Sampler(threading.Thread):
    """Peak RSS of the load generator and the target; when the target's connections opened.

    Connect time is read on the target's side: its open file descriptors
    (one per accepted connection) counted every 20 ms, from the first new one
    to the last, so it does not depend on the run engine's bookkeeping.
    """

    def __init__(self, connections: int, *, idle_fds: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.me = psutil.Process()
        self.connections = connections
        self.done = threading.Event()
        self.client_peak = 0
        self.target_peak = 0
        self.target_fds = idle_fds  # an idle target's descriptors (listening sockets, logs)
        self.first_connect: float | None = None
        self.all_connected: float | None = None

    def run(self) -> None:
        tick = 0
        while not self.done.wait(0.02):
            target = self._find_target()
            if target is not None:
                self._count_fds(target)
            tick += 1
            if tick % 10 == 0:
                self._rss()

    def _find_target(self) -> psutil.Process | None:
        for child in self.me.children(recursive=True):
            try:
                if "serve" in child.cmdline():
                    return child
            except psutil.Error:
                continue
        return None

    def _count_fds(self, target: psutil.Process) -> None:
        try:
            fds = target.num_fds()
        except psutil.Error:
            return
        now = time.monotonic()
        if self.first_connect is None and fds > self.target_fds:
            self.first_connect = now
        if self.all_connected is None and fds >= self.target_fds + self.connections:
            self.all_connected = now

    def _rss(self) -> None:
        client, target = self.me.memory_info().rss, 0
        for child in self.me.children(recursive=True):
            try:
                line = child.cmdline()
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            if "serve" in line:
                target += rss
            elif not any("resource_tracker" in part for part in line):
                client += rss
        self.client_peak = max(self.client_peak, client)
        self.target_peak = max(self.target_peak, target)

    @property
    def connect_s(self) -> float | None:
        if self.first_connect is None or self.all_connected is None:
            return None
        return self.all_connected - self.first_connect


def idle_target() -> tuple[int, int]:
    """RSS and open descriptors of the embedded target with no connection."""
    from streambench.scenario.model import ServerFaults
    from streambench.target.embedded import EmbeddedTarget

    async def measure() -> tuple[int, int]:
        async with EmbeddedTarget(ServerFaults()) as target:
            await asyncio.sleep(0.5)  # let it settle after start-up
            process = psutil.Process(target.pid)
            return int(process.memory_info().rss), process.num_fds()

    return asyncio.run(measure())


def scenario(args: argparse.Namespace, *, connections: int | None = None,
             hold: float | None = None) -> Scenario:
    return Scenario.model_validate({
        "name": "connections",
        "target": {"protocol": "websocket", "url": "embedded", "connect_timeout": "30s"},
        "load": {"connections": connections or args.connections, "rate": args.rate,
                 "duration": hold or args.hold,
                 "heartbeat": args.heartbeat or None, "timeout": "10s"},
        "message": {"body": {"text": "{{sentence}}"}},
        "capture": {"redaction": {"allow": ["text"]}},
    })


def connected(store: Store, run_id: str) -> int:
    """Connections that opened (each records a ``connect`` event)."""
    import polars as pl

    return int(store.events(run_id).filter(pl.col("kind") == "connect")
               .select(pl.col("conn").n_unique()).collect().item())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = raise_open_files()
    if soft < args.connections + 100:
        sys.exit(f"connections: the open-file limit is {soft} (hard {hard}), below the "
                 f"{args.connections} connections asked for; see docs/scale.md")
    target_idle, idle_fds = idle_target()
    sampler = Sampler(args.connections, idle_fds=idle_fds)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store or Path(tmp) / "store")
        # a small run first: imports, Arrow's and polars' memory pools are warm, so the
        # baseline below is the load generator's own and the rest is per connection
        execute(scenario(args, connections=10, hold=1.0), store=store, handle_signals=False)
        baseline = sampler.me.memory_info().rss
        sampler.start()
        sc = scenario(args)
        result = execute(sc, store=store, workers=args.workers, handle_signals=False)
        sampler.done.set()
        opened = connected(store, result.run_id)
    s, n = result.summary, args.connections
    took = sampler.connect_s
    return {
        "connections": n, "hold_s": args.hold, "workers": args.workers, "rate": args.rate,
        "heartbeat_s": args.heartbeat, "open_files": [soft, hard], "connected": opened,
        "connect_s": took, "connect_rate": n / took if took else None,
        "client_rss_mb": sampler.client_peak / MB, "client_baseline_mb": baseline / MB,
        "client_kb_per_conn": (sampler.client_peak - baseline) / n / 1024,
        "target_idle_mb": target_idle / MB, "target_rss_mb": sampler.target_peak / MB,
        "target_kb_per_conn": (sampler.target_peak - target_idle) / n / 1024,
        "status": result.status, "sent": s["sent"], "received": s["received"],
        "errors": s["errors"], "timeouts": s["timeouts"], "p99_ms": s["latency_ms"]["p99"],
        "p50_ms": s["latency_ms"]["p50"],
    }


def report(r: dict[str, Any]) -> None:
    rate = "-" if r["connect_rate"] is None else f"{r['connect_rate']:,.0f}/s"
    took = "-" if r["connect_s"] is None else f"{r['connect_s']:.2f}s"
    print(f"{r['connected']:,} of {r['connections']:,} connections held {r['hold_s']:g}s "
          f"({r['workers']} worker(s), {r['rate']:g} msg/s, ping every {r['heartbeat_s']:g}s; "
          f"open files {r['open_files'][0]}/{r['open_files'][1]})")
    print(f"  connect: all open in {took} ({rate}), as the target saw them")
    print(f"  client RSS: {r['client_rss_mb']:.0f} MB peak, {r['client_baseline_mb']:.0f} MB "
          f"before -> {r['client_kb_per_conn']:.1f} KB per connection")
    print(f"  target RSS: {r['target_rss_mb']:.0f} MB peak, {r['target_idle_mb']:.0f} MB idle "
          f"-> {r['target_kb_per_conn']:.1f} KB per connection")
    print(f"  messages: sent {r['sent']:,} received {r['received']:,} errors {r['errors']} "
          f"timeouts {r['timeouts']}; latency p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms "
          f"({r['status']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the load runs")
    parser.add_argument("--rate", type=float, default=500.0, help="messages/s, all connections")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="ping interval (s), 0: none")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    parser.add_argument("--store", help="keep the runs in this store (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("STREAMBENCH_HASH_KEY", "benchmark-only-key-0123456789abcdef")
    figures = measure(args)
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures)


if __name__ == "__main__":
    main()
