"""``streambench proxy``: the fault proxy on its own, in front of any TCP service.

Stdout carries JSON lines: first the ready line, flushed as soon as the port
listens (``{"listen": "127.0.0.1:PORT", "upstream": ..., "pid": ...}``), then
one ground-truth row per fault window as it ends (FAULT_SCHEMA names, times
in epoch ns), unless ``--truth FILE`` takes them. Everything for humans goes
to stderr. SIGINT (Ctrl-C) and SIGTERM stop it cleanly: windows still open
end then and their rows are written.

Fault windows count from when the proxy listens; with ``--clock-from-stdin``
(how a run starts it) from the monotonic time in the first stdin line,
``{"zero_mono_ns": N}``, and the proxy stops when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import orjson

from streambench.cli_common import exit_with_parent, log_to_stderr, run_coroutine
from streambench.errors import ConfigError
from streambench.logs import get_logger
from streambench.scenario.network import NetworkFault

log = get_logger("streambench.proxy")


def register(subparsers: Any) -> None:
    """Add ``proxy`` to the ``streambench`` command."""
    parser = subparsers.add_parser(
        "proxy", help="run the TCP fault proxy in front of a service",
        description="Forward TCP connections from --listen to --upstream, injecting the "
        "network faults of --faults (latency, bandwidth, blackhole, reset, slow_close, "
        "slicer, refuse, close_after; docs/network-faults.md). Prints a JSON ready line, "
        "then the ground truth as JSON lines. Ctrl-C stops it.",
    )
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:0: any free port)")
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT",
                        help="the service to forward to")
    parser.add_argument("--faults", metavar="FILE",
                        help="YAML: a list of network faults, or a file with network_faults: "
                        "(a scenario works); none: a clean pass-through")
    parser.add_argument("--seed", type=int, help="seed of the fault decisions (default: the "
                        "file's seed, else 0)")
    parser.add_argument("--truth", metavar="FILE",
                        help="write the ground truth (JSON lines) here instead of stdout")
    parser.add_argument("--exit-with-parent", type=int, metavar="PID",
                        help="stop when process PID ends, even by kill -9 (Linux; used by runs)")
    parser.add_argument("--clock-from-stdin", action="store_true",
                        help="fault windows count from {\"zero_mono_ns\": N} read on stdin; "
                        "stop when stdin closes (used by runs)")
    parser.set_defaults(handler=proxy)


def parse_address(text: str, *, flag: str, default_host: str | None = None
                  ) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; ``:PORT`` or ``PORT`` with a default host)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or (default_host or "")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{flag}: expected HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host, int(port)


class RowSink:
    """Ground-truth rows as JSON lines, flushed per line (stdout, or a file)."""

    def __init__(self, path: str | None) -> None:
        try:
            self._file: IO[bytes] = open(path, "wb") if path else sys.stdout.buffer  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"--truth {path}: {exc.strerror}") from None
        self._owned = bool(path)

    def __call__(self, row: dict[str, Any]) -> None:
        self._file.write(orjson.dumps(row) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()


def proxy(args: argparse.Namespace) -> int:
    """Handler of ``streambench proxy``: 0 after a clean stop."""
    log_to_stderr("streambench.proxy", "streambench proxy")
    if args.exit_with_parent:
        exit_with_parent(args.exit_with_parent)
    listen = parse_address(args.listen, flag="--listen", default_host="127.0.0.1")
    upstream = parse_address(args.upstream, flag="--upstream")
    faults: tuple[NetworkFault, ...] = ()
    seed = 0
    if args.faults:
        from streambench.scenario.load import load_network_faults

        faults, seed = load_network_faults(args.faults)
    sink = RowSink(args.truth)
    try:
        run_coroutine(_serve(listen=listen, upstream=upstream, faults=faults,
                    seed=seed if args.seed is None else args.seed, emit=sink,
                    clock_from_stdin=args.clock_from_stdin))
    finally:
        sink.close()
    return 0


async def _serve(*, listen: tuple[str, int], upstream: tuple[str, int],
                 faults: tuple[NetworkFault, ...], seed: int,
                 emit: Callable[[dict[str, Any]], None], clock_from_stdin: bool) -> None:
    from streambench.generate.faults.network.plan import NetworkPlan
    from streambench.generate.faults.network.proxy import FaultProxy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the ready line: we may be signalled
        loop.add_signal_handler(sig, stop.set)
    server = FaultProxy(NetworkPlan(faults, seed=seed), upstream=upstream, emit=emit)
    try:
        host, port = await server.start(*listen)
    except OSError as exc:
        raise ConfigError(f"proxy: cannot listen on {listen[0]}:{listen[1]}: "
                          f"{exc.strerror or exc}") from None
    try:
        ready = {"listen": f"{host}:{port}", "upstream": f"{upstream[0]}:{upstream[1]}",
                 "pid": os.getpid()}
        sys.stdout.write(orjson.dumps(ready).decode() + "\n")
        sys.stdout.flush()
        log.info("%s:%d -> %s:%d with %d network fault(s), seed %d; Ctrl-C stops", host, port,
                 *upstream, len(faults), seed)
        if clock_from_stdin:
            clock = loop.create_task(_clock_from_stdin(server, stop), name="proxy.stdin")
        else:
            server.start_clock(time.monotonic_ns())
        await stop.wait()
        if clock_from_stdin:
            clock.cancel()
    finally:
        await server.close()
        log.info("stopped after %d connection(s)", server.accepted)


async def _clock_from_stdin(server: Any, stop: asyncio.Event) -> None:
    """Start the clock at the zero the run sends; stop when the run closes our stdin."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            server.start_clock(int(orjson.loads(line)["zero_mono_ns"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignored a stdin line that is not {\"zero_mono_ns\": N}")
    stop.set()
