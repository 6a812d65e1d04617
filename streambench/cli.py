"""The ``streambench`` command: thin. It parses arguments and calls the library.

Each package contributes its sub-commands through a ``register(subparsers)``
function in its ``commands`` module; the list below is the whole registry.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from streambench import __version__
from streambench.errors import StreambenchError

# (module, attribute) pairs, imported lazily so `streambench --help` stays fast.
_COMMAND_MODULES = (
    "streambench.generate.commands",  # run
    "streambench.scenario.commands",  # validate
    "streambench.target.commands",  # serve
    "streambench.generate.faults.network.commands",  # proxy
    "streambench.capture.commands",  # runs
    "streambench.capture.retention_commands",  # prune, forget
    "streambench.capture.store_commands",  # compact, audit, permissions
    "streambench.capture.key_commands",  # keys
    "streambench.analyze.commands",  # metrics, slo, anomalies, compare, kb
    "streambench.report.commands",  # report, nightly
    "streambench.doctor",  # doctor
)


def build_parser(commands: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="streambench",
        description="Drive WebSocket, MQTT and HTTP load from YAML scenarios; "
        "capture to Parquet; analyse.",
    )
    parser.add_argument("--version", action="version", version=f"streambench {__version__}")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines on stderr as text or JSON lines (default: text)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default="warning", help="least severe log level shown")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a package not yet written
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None, *,
         commands: Sequence[str] = _COMMAND_MODULES) -> int:
    """The command line; ``commands`` narrows the sub-command modules imported (a child
    process such as the fault proxy starts sooner without the others)."""
    from streambench.logs import configure
    from streambench.scrub import scrub

    parser = build_parser(commands)
    args = parser.parse_args(argv)
    configure(fmt=args.log_format, level=args.log_level)
    with _signals_interrupt():
        try:
            return int(args.handler(args) or 0)
        except StreambenchError as exc:
            print(f"streambench: error: {scrub(str(exc))}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            _ignore_signals()  # a second Ctrl-C while saying so must not print a traceback
            print("streambench: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `streambench runs --json | head`: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in any phase of any command, even in
    a blocking system call (reading a FIFO); a run installs its own handlers on top.
    A signal the parent process ignores stays ignored (a background job's Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig, handler in saved.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _ignore_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)
