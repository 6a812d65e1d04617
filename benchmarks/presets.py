"""presets: client CPU per answered message, a well-kept client library vs streambench's preset.

Why: issue 11 asks to use a well-kept client library for Socket.IO and
GraphQL where one is fast enough, and to measure before hand-writing a path.
Against the same real server (python-socketio under uvicorn; Strawberry under
uvicorn), in the same run, for each protocol:

1. library: python-socketio's ``AsyncClient`` (acks via ``emit(callback=)``),
   or gql's ``Client`` over ``WebsocketsTransport`` (graphql-transport-ws),
   ``--window`` requests in flight per connection, for ``--seconds``;
2. streambench: ``streambench run`` of the example scenario (scenarios/socketio.yaml,
   scenarios/graphql.yaml) at the rate the library achieved, one worker, full
   capture (payloads, redaction, Parquet: more work than the library does).

Prints answered messages/s and client CPU (user + system) per 1,000 answered
messages for both, marginal (a run of 3x ``--seconds`` minus a run of
``--seconds``: process start-up, imports and connecting are not counted), and
the ratio streambench / library (below 1: streambench spends less). Everything
runs on 127.0.0.1; the servers are stopped by pid.

    python benchmarks/presets.py [--seconds 4] [--connections 2] [--window 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

SOCKETIO_CLIENT = r"""
import asyncio, resource, sys, time, socketio

async def one(url, seconds, window, counts):
    sio = socketio.AsyncClient()
    await sio.connect(url, transports=["websocket"])
    slots = asyncio.Semaphore(window)
    def answered(*args):
        counts[0] += 1
        slots.release()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await slots.acquire()
        await sio.emit("chat", {"text": "the quick brown fox"}, callback=answered)
    await sio.disconnect()

async def main(url, connections, seconds, window):
    counts = [0]
    await asyncio.gather(*(one(url, seconds, window, counts) for _ in range(connections)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(counts[0], usage.ru_utime + usage.ru_stime)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
"""

GQL_CLIENT = r"""
import asyncio, resource, sys, time
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

QUERY = gql("subscription { count(upTo: 3) }")

async def one(url, seconds, window, counts):
    transport = WebsocketsTransport(url=url, subprotocols=["graphql-transport-ws"])
    async with Client(transport=transport) as session:
        async def subscriber():
            while time.monotonic() < end:
                async for _ in session.subscribe(QUERY):
                    pass
                counts[0] += 1
        end = time.monotonic() + seconds
        await asyncio.gather(*(subscriber() for _ in range(window)))

async def main(url, connections, seconds, window):
    counts = [0]
    await asyncio.gather(*(one(url, seconds, window, counts) for _ in range(connections)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(counts[0], usage.ru_utime + usage.ru_stime)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(module: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", f"tests.backends.servers.{module}",
                             "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"presets: {module} did not start")


def marginal(run: Callable[[float], tuple[int, float]], seconds: float
             ) -> tuple[float, float]:
    """(answered/s, CPU s per 1,000 answered) from a run of 3x ``seconds`` minus one of
    ``seconds``: what a message costs once the client is up."""
    n1, cpu1 = run(seconds)
    n3, cpu3 = run(3 * seconds)
    return (n3 - n1) / (2 * seconds), (cpu3 - cpu1) / max(n3 - n1, 1) * 1000


def library(code: str, url: str, args: argparse.Namespace) -> tuple[float, float]:
    def run(seconds: float) -> tuple[int, float]:
        done = subprocess.run([sys.executable, "-c", code, url, str(args.connections),
                               str(seconds), str(args.window)], capture_output=True,
                              text=True, check=True, timeout=seconds + 60)
        answered, cpu = done.stdout.split()
        return int(answered), float(cpu)

    return marginal(run, args.seconds)


def streambench(name: str, url: str, rate: float, args: argparse.Namespace,
                tmp: str) -> tuple[float, float]:
    doc = yaml.safe_load((REPO / "scenarios" / f"{name}.yaml").read_text())
    doc["target"]["url"] = url
    doc["load"].update(connections=args.connections, rate=round(rate))

    def run(seconds: float) -> tuple[int, float]:
        doc["load"]["duration"] = f"{seconds}s"
        path = Path(tmp) / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sys.executable, "-m", "streambench", "run", str(path),
                               "--store", f"{tmp}/store", "--json", "--progress", "never",
                               "--workers", "1"], capture_output=True, text=True,
                              timeout=seconds + 120, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return int(json.loads(done.stdout)["received"]), cpu

    return marginal(run, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args()
    cases = [("socketio", "socketio_server", SOCKETIO_CLIENT, "python-socketio AsyncClient",
              lambda port: (f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}")),
             ("graphql", "strawberry_graphql", GQL_CLIENT, "gql WebsocketsTransport",
              lambda port: (f"ws://127.0.0.1:{port}/graphql",) * 2)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, module, code, label, urls in cases:
            server, port = start(module)
            try:
                library_url, scenario_url = urls(port)
                rate, cpu = library(code, library_url, args)
                print(f"{name}: {label}: {rate:,.0f} answered/s, {cpu:.2f} CPU s per 1,000")
                ours, our_cpu = streambench(name, scenario_url, rate, args, tmp)
                print(f"{name}: streambench preset at {rate:,.0f}/s: {ours:,.0f} answered/s, "
                      f"{our_cpu:.2f} CPU s per 1,000 (full capture)")
                print(f"{name}: CPU ratio streambench / library: {our_cpu / cpu:.2f}")
            finally:
                os.kill(server.pid, signal.SIGTERM)
                server.wait(timeout=10)


if __name__ == "__main__":
    main()
