"""The ``streambench`` command: thin. It parses arguments and calls the library.

Each package contributes its sub-commands through a ``register(subparsers)``
function in its ``commands`` module; the list below is the whole registry.
"""

from __future__ import annotations

import argparse
import os
import sys

from streambench import __version__
from streambench.errors import StreambenchError

# (module, attribute) pairs, imported lazily so `streambench --help` stays fast.
_COMMAND_MODULES = (
    "streambench.generate.commands",  # run
    "streambench.scenario.commands",  # validate
    "streambench.target.commands",  # serve
    "streambench.generate.faults.network.commands",  # proxy
    "streambench.capture.commands",  # runs
    "streambench.capture.retention",  # prune, forget
    "streambench.capture.key_commands",  # keys
    "streambench.analyze.commands",  # metrics, slo, anomalies, compare, kb
    "streambench.report.commands",  # report, nightly
    "streambench.doctor",  # doctor
)


def build_parser() -> argparse.ArgumentParser:
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
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a package not yet written
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from streambench.logs import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    configure(fmt=args.log_format, level=args.log_level)
    try:
        return int(args.handler(args) or 0)
    except StreambenchError as exc:
        print(f"streambench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streambench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `streambench runs --json | head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
