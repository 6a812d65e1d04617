"""gRPC bidirectional-stream messages/s per client core: streambench vs a raw grpcio client.

    python benchmarks/grpc_echo.py [--messages 20000] [--seconds 3] [--connections 4]

Starts the built-in gRPC echo service (``streambench serve --grpc-port 0`` in a
child process, its own core) once and measures, in the same run, one client
process talking to its ``Chat`` method (one long-lived stream per connection):

* raw grpcio: ``grpc.aio``, one stream per connection, a writer that builds
  each request message and awaits ``write()`` back to back, and a reader that
  deserializes every reply (``--messages`` over ``--connections`` streams);
* streambench: a full run of the engine with ``protocol: grpc``, ``method: Chat``
  (open-model schedule, replies matched by cid, capture, redaction, Parquet)
  at an offered rate above the raw client's, so its figure is its ceiling; once
  as scenarios run by default (payloads captured: each reply turned into JSON,
  both payloads redacted and written) and once with ``capture.payloads: false``.

The figure is *messages per client core*: replies received divided by the CPU
seconds the client process used meanwhile (every thread: grpcio's own and the
capture writer's count), for streambench up to the moment every event is on
disk. The compaction a run does after that (merging its parts into one file) is
printed apart. A run also has costs that do not grow with it: opening the
channels, the write path's first use (warmed up before the schedule starts), the
first and last flushes, 0.2-0.3 CPU seconds in all (the raw client's channels are
opened before its clock starts). ``--seconds 8`` dilutes them; over the default
3 s they are a few percent of the figure, within the rounds' spread.

A Python gRPC server on one core may be slower than either client; dividing by
the client's CPU time, not by wall time, keeps the comparison about the clients.
Wall-clock rates are printed too.

On a machine with two CPUs or more the client process (every thread it has or
starts) runs on one CPU and the server on another (``--no-pin`` leaves both to
the scheduler): "per client core" is then literally one core, and neither side
is slowed by threads of the other moving onto its CPU. Unpinned, the raw
client's rounds spread by +-15% on a 2-CPU VM; pinned, by +-5%. Rounds alternate
``--repeat`` times; each variant's best round is printed, and the goal is judged
on the median of the per-round ratios (a round's variants run back to back, so
a slow spell of the host slows both sides of its ratio). Goal: >= 0.8 x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import polars as pl

from streambench.capture.store import Store
from streambench.generate.engine.progress import Progress
from streambench.generate.engine.run import run_async as engine_run
from streambench.scenario.model import BUILTIN_PROTO, Scenario, ServerFaults
from streambench.scenario.proto import compile_proto
from streambench.target.embedded import EmbeddedTarget

GOAL_RATIO = 0.8
TEXT = "hello from the benchmark, a short sentence"
STEAL_WARN = 0.02  # host steal above this share of CPU time: the figures are noisy
Figure = tuple[float, float]  # (messages per client CPU second, messages per wall second)


def host_cpu() -> tuple[int, int]:
    """(stolen, total) CPU ticks of this machine so far, from /proc/stat ((0, 0) without it).

    Steal is time a virtual CPU was ready but the hypervisor ran another guest: on
    a shared host it slows some rounds and not others, whatever the code does.
    """
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks)


def pin(pid: int, cpu: int) -> None:
    """Run every thread of process ``pid`` on CPU ``cpu``; threads they start inherit it."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {cpu})


def pinned_cpus() -> tuple[int, int] | None:
    """(client CPU, server CPU): two of the CPUs this process may use; None without two."""
    if not hasattr(os, "sched_getaffinity") or not os.path.isdir("/proc/self/task"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


async def raw_grpcio(address: str, *, messages: int, connections: int) -> Figure:
    """A plain grpc.aio client: one Chat stream per connection, writes back to back."""
    rpc = compile_proto(str(BUILTIN_PROTO)).method(None, "Chat")
    per_stream = messages // connections
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(connections)]

    async def stream(k: int, channel: grpc.aio.Channel) -> int:
        call = channel.stream_stream(rpc.path, request_serializer=rpc.request.SerializeToString,
                                     response_deserializer=rpc.response.FromString)()

        async def read() -> int:
            received = 0
            while await call.read() is not grpc.aio.EOF:
                received += 1
            return received

        reader = asyncio.create_task(read())
        for i in range(per_stream):
            await call.write(rpc.request(text=TEXT, value=1.5, cid=f"{k}-{i}", seq=i))
        await call.done_writing()
        return await reader

    for channel in channels:
        await channel.channel_ready()
    cpu, wall = time.process_time(), time.perf_counter()
    received = sum(await asyncio.gather(*(stream(k, c) for k, c in enumerate(channels))))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for channel in channels:
        await channel.close()
    return received / cpu, received / wall


async def streambench(url: str, *, rate: float, seconds: float, connections: int,
                      store: Store, payloads: bool) -> tuple[Figure, int, int, float]:
    """(figure, sent, received, CPU seconds after the load) of one streambench gRPC run.

    The CPU counted runs from the run's start to the moment every event is in a
    Parquet part on disk (the engine's final progress report): the load and its
    capture. What follows is the end-of-run compaction, merging the parts into one
    file (a long run compacts every ``capture.compact_every`` from a separate
    process instead): returned apart, not in the figure, like the summary
    ``streambench.api`` computes after it (analysis, not the client's load).
    """
    scenario = Scenario.model_validate({
        "name": "grpc-echo",
        "target": {"protocol": "grpc", "url": url, "method": "Chat"},
        "load": {"connections": connections, "rate": rate, "duration": seconds,
                 "timeout": "30s"},
        "message": {"body": {"text": TEXT, "value": 1.5}},
        "capture": {"redaction": {"allow": ["text", "value"]}, "payloads": payloads},
    })
    loaded: list[float] = []

    def on_progress(progress: Progress) -> None:
        if progress.final:
            loaded.append(time.process_time())

    cpu = time.process_time()
    outcome = await engine_run(scenario, store=store, on_progress=on_progress)
    after = time.process_time() - loaded[0]
    cpu = loaded[0] - cpu
    events = store.events(outcome.run_id).select("kind", "ts").collect()
    sends, recvs = (events.filter(pl.col("kind") == kind) for kind in ("send", "recv"))
    wall = (recvs["ts"].max() - sends["ts"].min()).total_seconds()
    return (recvs.height / cpu, recvs.height / wall), sends.height, recvs.height, after


VARIANTS = {"streambench": True, "streambench, capture.payloads: false": False}


async def measure(args: argparse.Namespace, store: Store) -> dict[str, list[Figure]]:
    """Every round's figure of each; ``--repeat`` alternating rounds (a shared machine
    is noisy: each round's variants run back to back, and their ratios are compared)."""
    rounds: dict[str, list[Figure]] = {"raw grpcio": [], **{name: [] for name in VARIANTS}}
    compaction: dict[str, list[float]] = {name: [] for name in VARIANTS}
    async with EmbeddedTarget(ServerFaults(), grpc=True) as target:
        url = target.grpc_url
        if args.cpus is not None:
            pin(os.getpid(), args.cpus[0])
            for pid in target.pids:
                pin(pid, args.cpus[1])
        for _ in range(args.repeat):
            raw = await raw_grpcio(url.removeprefix("grpc://"), messages=args.messages,
                                   connections=args.connections)
            rounds["raw grpcio"].append(raw)
            for name, payloads in VARIANTS.items():
                # Offered above the raw client's rate: the figure is what it gets done.
                figure, sent, received, after = await streambench(
                    url, rate=raw[1] * 1.5, seconds=args.seconds,
                    connections=args.connections, store=store, payloads=payloads)
                compaction[name].append(after / received * 1e6)
                if received != sent:
                    print(f"  note: {name}: {sent - received} of {sent} messages not answered")
                rounds[name].append(figure)
    print("end-of-run compaction (not counted above), CPU us per message, median: "
          + "; ".join(f"{name} {statistics.median(us):.1f}" for name, us in compaction.items()))
    return rounds


def ratios_to_raw(rounds: dict[str, list[Figure]], name: str) -> list[float]:
    """Each round's per-core figure of ``name`` over the raw client's in the same round."""
    return [per / raw for (per, _), (raw, _) in zip(rounds[name], rounds["raw grpcio"],
                                                     strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="for the raw client")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="streambench run length (its schedule's; a run behind it lasts "
                             "longer)")
    parser.add_argument("--connections", type=int, default=4, help="streams (one per channel)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (alternating)")
    parser.add_argument("--no-pin", action="store_true",
                        help="leave the client and the server to the scheduler")
    args = parser.parse_args()
    args.cpus = None if args.no_pin else pinned_cpus()
    os.environ.setdefault("STREAMBENCH_HASH_KEY", "benchmark-only-key-0123456789abcdef")
    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    steal = host_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        rounds = run(measure(args, Store(str(Path(tmp) / "store"))))
    stolen, total = (after - before for after, before in zip(host_cpu(), steal, strict=True))
    print(f"gRPC bidi Chat echo (the built-in service, its own process) on 127.0.0.1, "
          f"one client process, {args.connections} streams, {args.repeat} rounds; "
          + (f"client on CPU {args.cpus[0]}, server on CPU {args.cpus[1]}" if args.cpus
             else "not pinned to CPUs"))
    for name, each in rounds.items():
        per_core, per_wall = max(each)
        spread = sorted(per for per, _ in each)
        ratios = ratios_to_raw(rounds, name)
        print(f"  {name:<38} {per_core:>7,.0f} messages/s per client core  "
              f"({per_wall:,.0f} messages/s wall clock; rounds {spread[0]:,.0f}-"
              f"{spread[-1]:,.0f} per core); x raw in its round: median "
              f"{statistics.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f}")
    if total:
        share = stolen / total
        print(f"host: {share:.1%} of CPU time stolen by other guests while measuring"
              + (f" (over {STEAL_WARN:.0%}: the rounds were slowed unevenly; run again "
                 "on a quieter machine)" if share > STEAL_WARN else ""))
    ratio = statistics.median(ratios_to_raw(rounds, "streambench"))
    print(f"goal streambench >= {GOAL_RATIO} x raw per client core (median of the rounds' "
          f"ratios): {ratio:.2f} {'ok' if ratio >= GOAL_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
