"""connections: hold many WebSocket connections open against the embedded target.

Opens ``--connections`` (default 10,000) connections to the built-in target,
holds them ``--hold`` seconds (default 60) at a low message rate with
heartbeats, and prints:

* connect time and rate, as the target saw them (its open descriptors);
* client RSS per connection: (peak RSS of the load generator while holding -
  its peak in a warm-up run of 10 connections per worker with the same
  workers, rate and length) / connections: what the message rate holds
  (capture buffers, replies in flight) is in both and cancels out; the load
  generator is this process and its worker processes;
* target RSS, idle and holding the connections (per connection too; every
  process of a multi-process target counted);
* connections lost while held (a disconnect that was not the run's own close);
* p50/p99 latency (from the intended send time) and the run's counts.

Everything is on 127.0.0.1, the run stops by itself, and the processes it
starts (the target, workers) are ended by the run engine by their pids. The
open-file soft limit is raised to the hard limit first; each connection
costs one descriptor here and one in the target. Past one process's limit
(``ulimit -Hn``, less ~100) the load is split over worker processes
(``--workers``, by default as many as the limit needs) and the embedded target
serves from as many processes (``serve --processes``). Past one source
address's ephemeral ports (~28,000 to one ``host:port``) the connections are
spread over 127.0.0.1, 127.0.0.2, ... (``--source-address``, by default as many
as needed). See docs/scale.md, "Many connections".

``--target node`` holds them against Node's ``ws`` echo server instead (the
one ws_echo.py uses, as a cluster of as many processes as the open-file limit
needs): a target that costs the shared cores less, so that the message rate
measures the load generator.

    python benchmarks/connections.py [--connections 10000] [--hold 60] [--json]
    python benchmarks/connections.py --connections 100000 --rate 10000 --heartbeat 30 \
        [--target node]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from streambench.api import execute  # noqa: E402
from streambench.capture.store import Store  # noqa: E402
from streambench.generate.scale.limits import (  # noqa: E402
    ephemeral_ports,
    processes_for,
    raise_open_files,
)
from streambench.scenario.model import Scenario  # noqa: E402
from streambench.testing.processes import stop_process  # noqa: E402

NODE_SERVER = "ws_echo_server.js"

MB = 1 << 20


class Sampler(threading.Thread):
    """Peak RSS of the load generator and the target; when the target's connections opened.

    Connect time is read on the target's side: its open file descriptors
    (one per accepted connection) counted every 20 ms (200 ms past 10,000
    connections), from the first new one to the last, so it does not depend on
    the run engine's bookkeeping.
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
        # Listing 100,000 descriptors every 20 ms would cost a core of the machine under
        # test: past 10,000 connections they are counted every 200 ms, and only until
        # all are open.
        every = 1 if self.connections <= 10_000 else 10
        tick = 0
        while not self.done.wait(0.02):
            if self.all_connected is None:
                if tick % 50 == 0:  # the target's processes, found again once a second
                    targets = self._find_targets()
                if tick % every == 0:
                    self._count_fds(targets)
            tick += 1
            if tick % 10 == 0:
                self._rss()

    def _find_targets(self) -> list[psutil.Process]:
        found = []
        for child in self.me.children(recursive=True):
            try:
                if is_target(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def _count_fds(self, targets: list[psutil.Process]) -> None:
        fds = 0
        for target in targets:
            try:
                fds += target.num_fds()
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
            if is_target(line):
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


def is_target(cmdline: list[str]) -> bool:
    """A process of the target: the embedded one (``streambench serve``) or the Node server."""
    return "serve" in cmdline or any(part.endswith(NODE_SERVER) for part in cmdline)


def idle(pids: list[int]) -> tuple[int, int]:
    """RSS and open descriptors of these processes, summed."""
    running = [psutil.Process(pid) for pid in pids]
    return (sum(int(p.memory_info().rss) for p in running), sum(p.num_fds() for p in running))


def idle_target(processes: int) -> tuple[int, int]:
    """RSS and open descriptors of the embedded target with no connection (every process)."""
    from streambench.scenario.model import ServerFaults
    from streambench.target.embedded import EmbeddedTarget

    async def measure() -> tuple[int, int]:
        async with EmbeddedTarget(ServerFaults(), processes=processes,
                                  startup_timeout=15.0 + 5.0 * processes) as target:
            await asyncio.sleep(0.5)  # let it settle after start-up
            return idle(target.pids)

    return asyncio.run(measure())


@contextlib.contextmanager
def node_target(processes: int) -> Iterator[tuple[str, int, int]]:
    """The Node ``ws`` echo server (ws_echo.py's) as a cluster of ``processes`` workers:
    ``(url, idle RSS, idle descriptors)``; stopped by its pid at the end."""
    from ws_echo import start_server  # a sibling benchmark script

    server, port = start_server(processes)
    try:
        time.sleep(0.5)  # let it settle after start-up
        tree = psutil.Process(server.pid)
        rss, fds = idle([server.pid, *(child.pid for child in tree.children(recursive=True))])
        yield f"ws://127.0.0.1:{port}/", rss, fds
    finally:
        stop_process(server)


def source_addresses(args: argparse.Namespace) -> list[str]:
    """``--source-address``, else as many of 127.0.0.1, .2, ... as the ephemeral ports need."""
    if args.source_address:
        return list(args.source_address)
    ports = ephemeral_ports()
    if ports is None or args.connections <= ports[1] - ports[0] + 1:
        return []
    needed = -(-args.connections // (ports[1] - ports[0] + 1)) + 1  # one spare: others' ports
    return [f"127.0.0.{i}" for i in range(1, needed + 1)]


def scenario(args: argparse.Namespace, *, connections: int | None = None,
             hold: float | None = None) -> Scenario:
    return Scenario.model_validate({
        "name": "connections",
        "target": {"protocol": "websocket", "url": args.url, "connect_timeout": "30s",
                   "source_addresses": args.sources},
        "load": {"connections": connections or args.connections, "rate": args.rate,
                 "duration": hold or args.hold,
                 "heartbeat": args.heartbeat or None, "timeout": "10s"},
        "message": {"body": {"text": "{{sentence}}"}},
        "capture": {"redaction": {"allow": ["text"]}},
    })


def connected(store: Store, run_id: str) -> tuple[int, int]:
    """Connections that opened (each records a ``connect`` event), and connections lost
    while held: closed before their own last send, or opened more than once (a
    reconnect). The run's own close of a connection comes after its last send, and a
    connection whose schedule ended closes while others may still be sending."""
    import polars as pl

    events = store.events(run_id)
    key = ["worker", "conn"]
    opened = events.filter(pl.col("kind") == "connect").group_by(key).len()
    last_send = events.filter(pl.col("kind") == "send").group_by(key).agg(
        pl.col("ts").max().alias("last_send"))
    closed_early = (events.filter(pl.col("kind") == "disconnect").join(last_send, on=key)
                    .filter(pl.col("ts") < pl.col("last_send")).select(key))
    lost = pl.concat([closed_early, opened.filter(pl.col("len") > 1).select(key)]).unique()
    return len(opened.collect()), len(lost.collect())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = raise_open_files()
    args.sources = source_addresses(args)
    processes = processes_for(args.connections, fill=0.85)
    with contextlib.ExitStack() as stack:
        if args.target == "node":
            args.url, target_idle, idle_fds = stack.enter_context(node_target(processes))
        else:
            args.url = "embedded"
            target_idle, idle_fds = idle_target(processes)
        return measure_with(args, soft=soft, hard=hard, target_processes=processes,
                            target_idle=target_idle, idle_fds=idle_fds)


def measure_with(args: argparse.Namespace, *, soft: int, hard: int, target_processes: int,
                 target_idle: int, idle_fds: int) -> dict[str, Any]:
    workers = args.workers or processes_for(args.connections)
    sampler = Sampler(args.connections, idle_fds=idle_fds)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store or Path(tmp) / "store")
        # A small run first, with the same workers, rate and length but 10 connections
        # per worker: its peak is the baseline (imports, Arrow's and polars' pools, and
        # what the message rate itself holds: capture buffers, writer pools, replies in
        # flight), so what the big run holds beyond it is what its connections cost.
        warm = Sampler(10, idle_fds=idle_fds)
        warm.start()
        execute(scenario(args, connections=min(10 * workers, args.connections)),
                store=store, workers=workers, handle_signals=False)
        warm.done.set()
        warm.join()
        baseline = max(warm.client_peak, sampler.me.memory_info().rss)
        sampler.start()
        sc = scenario(args)
        result = execute(sc, store=store, workers=workers, handle_signals=False)
        sampler.done.set()
        opened, lost = connected(store, result.run_id)
    s, n = result.summary, args.connections
    took = sampler.connect_s
    return {
        "connections": n, "hold_s": args.hold, "workers": workers, "rate": args.rate,
        "heartbeat_s": args.heartbeat, "open_files": [soft, hard], "connected": opened,
        "lost": lost, "source_addresses": args.sources, "target": args.target,
        "target_processes": target_processes,
        "connect_s": took, "connect_rate": n / took if took else None,
        "client_rss_mb": sampler.client_peak / MB, "client_baseline_mb": baseline / MB,
        "client_kb_per_conn": (sampler.client_peak - baseline) / n / 1024,
        "target_idle_mb": target_idle / MB, "target_rss_mb": sampler.target_peak / MB,
        "target_kb_per_conn": (sampler.target_peak - target_idle) / n / 1024,
        "status": result.status, "sent": s["sent"], "received": s["received"],
        "errors": s["errors"], "timeouts": s["timeouts"], "p99_ms": s["latency_ms"]["p99"],
        "p50_ms": s["latency_ms"]["p50"], "lag_p99_ms": s["schedule_lag_ms"]["p99"],
        "warnings": s["warnings"],
    }


def report(r: dict[str, Any]) -> None:
    rate = "-" if r["connect_rate"] is None else f"{r['connect_rate']:,.0f}/s"
    took = "-" if r["connect_s"] is None else f"{r['connect_s']:.2f}s"
    print(f"{r['connected']:,} of {r['connections']:,} connections held {r['hold_s']:g}s "
          f"({r['workers']} worker(s), {r['target']} target in {r['target_processes']} "
          f"process(es), "
          f"{r['rate']:g} msg/s, ping every {r['heartbeat_s']:g}s; "
          f"open files {r['open_files'][0]}/{r['open_files'][1]}; "
          f"source addresses {', '.join(r['source_addresses']) or 'default'})")
    print(f"  lost while held: {r['lost']}")
    print(f"  connect: all open in {took} ({rate}), as the target saw them")
    print(f"  client RSS: {r['client_rss_mb']:.0f} MB peak, {r['client_baseline_mb']:.0f} MB "
          f"before -> {r['client_kb_per_conn']:.1f} KB per connection")
    print(f"  target RSS: {r['target_rss_mb']:.0f} MB peak, {r['target_idle_mb']:.0f} MB idle "
          f"-> {r['target_kb_per_conn']:.1f} KB per connection")
    print(f"  messages: sent {r['sent']:,} received {r['received']:,} errors {r['errors']} "
          f"timeouts {r['timeouts']}; latency p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms "
          f"({r['status']})")
    print(f"  schedule lag p99 {r['lag_p99_ms']} ms (how late the load generator sent)")
    for line in r["warnings"]:
        print(f"  warning: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the load runs")
    parser.add_argument("--rate", type=float, default=500.0, help="messages/s, all connections")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="ping interval (s), 0: none")
    parser.add_argument("--workers", type=int, default=0,
                        help="client processes (default: as many as the open-file limit needs)")
    parser.add_argument("--source-address", action="append", metavar="ADDR",
                        help="open connections from this local address (repeat; default: "
                        "127.0.0.1, .2, ... as many as the ephemeral ports need)")
    parser.add_argument("--target", choices=("embedded", "node"), default="embedded",
                        help="the built-in target (default), or Node's ws echo server (as "
                        "ws_echo.py; a cluster of as many processes as the connections need)")
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
