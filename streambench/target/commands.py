"""``streambench serve``: run the built-in target until SIGINT/SIGTERM.

Stdout carries exactly one line, the ready line, flushed as soon as the port
listens: ``{"ws_url": ..., "http_url": ..., "pid": ..., "pids": [...]}`` (and
``grpc_url`` with ``--grpc-port``; ``pids`` are every process of
``--processes N``, see :mod:`streambench.target.processes`). Everything for humans
goes to stderr. ``--faults-out FILE`` writes the ground truth as JSON lines,
flushed per line so a crash loses nothing already injected.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import IO, Any

import orjson
import pydantic

from streambench.cli_common import exit_with_parent, log_to_stderr, run_coroutine
from streambench.errors import ConfigError, TargetError
from streambench.logs import get_logger
from streambench.scenario.model import ServerFaults, parse_duration, server_knobs
from streambench.target.processes import Helpers, helper_argv

# flag dest -> ServerFaults field; flags left unset keep the scenario's (or default) value
# how long an orphaned target waits for its dying run to be gone before cleaning up
ORPHAN_WAIT_S = 10.0
_DURATION_FLAGS = ("latency", "jitter", "stall_every", "stall_for", "disconnect_every")
_RATE_FLAGS = ("drop_rate", "error_rate", "disconnect_rate")


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``streambench`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the built-in WebSocket + HTTP echo target with fault knobs",
        description="Run the built-in target: WebSocket echo on any path (use /echo), "
        "HTTP echo, GET /health and GET /sse. Prints one JSON ready line on stdout.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    parser.add_argument("--grpc-port", type=int, metavar="PORT",
                        help="also serve the gRPC echo service (streambench.echo.Echo) on this "
                        "port (0: any free); its URL is grpc_url in the ready line")
    knobs = parser.add_argument_group("fault knobs (override --scenario's target.server)")
    for dest in _DURATION_FLAGS:
        knobs.add_argument(
            f"--{dest.replace('_', '-')}",
            dest=dest,
            type=_duration,
            metavar="DURATION",
            help="e.g. 20ms, 1s",
        )
    for dest in _RATE_FLAGS:
        knobs.add_argument(
            f"--{dest.replace('_', '-')}",
            dest=dest,
            type=_rate,
            metavar="P",
            help="probability per message, 0..1",
        )
    knobs.add_argument("--seed", type=int, help="seed of the fault decisions (default 0)")
    parser.add_argument("--scenario", metavar="FILE", help="take the knobs from target.server")
    parser.add_argument("--faults-out", metavar="FILE", help="write ground truth as JSON lines")
    parser.add_argument("--processes", type=_at_least_one, default=1, metavar="N",
                        help="serve from N processes sharing the port (SO_REUSEPORT), for more "
                        "connections than one process's open-file limit allows (default 1)")
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-parent", type=int, metavar="PID",
                        help="stop when process PID (the run that started it) ends, even by "
                        "kill -9 (Linux; used for url: embedded)")
    parser.set_defaults(handler=serve)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability 0..1, got {text!r}")
    return value


def faults_from_args(args: argparse.Namespace) -> ServerFaults:
    """The knobs: the scenario's ``target.server`` (if any), then the flags given."""
    knobs: dict[str, Any] = {}
    if args.scenario:
        knobs = _scenario_faults(args.scenario).model_dump()
    for dest in (*_DURATION_FLAGS, *_RATE_FLAGS, "seed"):
        value = getattr(args, dest)
        if value is not None:
            knobs[dest] = value
    try:
        return ServerFaults.model_validate(knobs)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"serve: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _scenario_faults(path: str) -> ServerFaults:
    from streambench.scenario import load_scenario

    return server_knobs(load_scenario(path).target)


class JsonLinesSink:
    """A fault sink writing one JSON object per line, flushed per line.

    The file is always written in append mode (``O_APPEND``): the processes of
    ``--processes N`` share it, and each line lands whole at the end whoever
    writes it. ``append=False`` empties it first.
    """

    def __init__(self, path: str, *, append: bool = False) -> None:
        try:
            if not append:
                open(path, "wb").close()
            self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 -- closed by close()
        except OSError as exc:
            raise ConfigError(f"--faults-out {path}: {exc.strerror}") from None

    def __call__(self, row: dict[str, Any]) -> None:
        self._file.write(orjson.dumps(row) + b"\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def serve(args: argparse.Namespace) -> int:
    """Handler of ``streambench serve``: 0 after a clean stop on SIGINT/SIGTERM."""
    log_to_stderr("streambench.target", "streambench serve")
    if args.exit_with_parent:
        # SIGHUP, not SIGTERM: the run stops its target with SIGTERM; SIGHUP says it died
        exit_with_parent(args.exit_with_parent, signal.SIGHUP)
    from streambench.generate.scale.limits import raise_open_files

    raise_open_files()  # a connection is a descriptor
    faults = faults_from_args(args)
    # a helper of --processes appends to the file its first process created
    sink = JsonLinesSink(args.faults_out, append=args.reuse_port) if args.faults_out else None
    stopped_by: list[int] = []
    try:
        run_coroutine(_serve(host=args.host, port=args.port, faults=faults, sink=sink,
                    grpc_port=args.grpc_port, processes=args.processes,
                    reuse_port=args.reuse_port, faults_out=args.faults_out,
                    stopped_by=stopped_by))
    finally:
        if sink is not None:
            sink.close()
        # the first process only: helpers of --processes share the folder with it
        # SIGHUP comes only when the run died (whatever else came with or after it)
        if (signal.SIGHUP in stopped_by and args.exit_with_parent and args.faults_out
                and not args.reuse_port):
            _remove_orphaned(args.faults_out, parent_pid=args.exit_with_parent)
    return 0


def _remove_orphaned(faults_out: str, *, parent_pid: int) -> None:
    """A run killed by -9 cannot remove its embedded target's temporary folder: the
    target does, once it stops with its parent gone (nobody will read the ground truth)."""
    import shutil
    from pathlib import Path

    from streambench.target.embedded import TEMP_PREFIX

    # The signal comes when the thread that started us exits; the rest of a process
    # killed by -9 follows within moments: wait (bounded) until we are re-parented.
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while os.getppid() == parent_pid and time.monotonic() < deadline:
        time.sleep(0.01)
    folder = Path(faults_out).parent
    if os.getppid() == parent_pid:
        get_logger("streambench.target").warning(
            "the run (pid %d) is still there after %.0f s: %s kept", parent_pid,
            ORPHAN_WAIT_S, folder)
    elif folder.name.startswith(TEMP_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)


async def _serve(*, host: str, port: int, faults: ServerFaults, sink: JsonLinesSink | None,
                 grpc_port: int | None = None, processes: int = 1, reuse_port: bool = False,
                 faults_out: str | None = None, stopped_by: list[int] | None = None) -> None:
    from streambench.target.server import start_server

    # Handlers first: whoever reads the ready line may signal us right away.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = stopped_by if stopped_by is not None else []

    def stop_on(sig: int) -> None:
        signals.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop_on, sig)
    try:
        server = await start_server(host=host, port=port, faults=faults, fault_sink=sink,
                                    reuse_port=reuse_port or processes > 1)
    except OSError as exc:
        raise TargetError(f"serve: cannot listen on {host}:{port}: {exc.strerror}") from None
    helpers = Helpers()
    try:
        await helpers.start(processes - 1, helper_argv(host=host, port=server.port,
                                                       faults=faults, faults_out=faults_out))
    except BaseException:
        await helpers.stop()
        await server.close()
        raise
    ready: dict[str, Any] = {"ws_url": server.ws_url, "http_url": server.http_url,
                             "pid": os.getpid(), "pids": [os.getpid(), *helpers.pids]}
    grpc_server = None
    if grpc_port is not None:
        from streambench.target.grpc_echo import start_grpc_server

        try:
            grpc_server = await start_grpc_server(host=host, port=grpc_port, faults=faults,
                                                  fault_sink=sink)
        except OSError as exc:
            await helpers.stop()
            await server.close()
            raise TargetError(f"serve: cannot listen on {host}:{grpc_port}: {exc}") from None
        ready["grpc_url"] = grpc_server.url
    sys.stdout.write(orjson.dumps(ready).decode() + "\n")
    sys.stdout.flush()
    get_logger("streambench.target").info(
        "serving %s and %s (faults: %s)",
        server.ws_url,
        server.http_url,
        faults.model_dump(exclude_defaults=True) or "none",
    )
    try:
        await stop.wait()
    finally:
        if grpc_server is not None:
            await grpc_server.close()
        await helpers.stop()
        await server.close()
        by = ", ".join(signal.Signals(n).name for n in signals) or "no signal"
        get_logger("streambench.target").info("stopped (%s): %s", by, server.stats)
