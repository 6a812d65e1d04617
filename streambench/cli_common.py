"""Options and output helpers shared by every sub-command module."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["add_json", "add_store", "exit_with_parent", "is_terminal", "print_json",
           "store_root"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def store_root(explicit: str | None = None) -> str:
    """The store root (:func:`streambench.capture.store.store_root`), imported when asked:
    the commands that need no store (``serve``, ``proxy``) start without the capture stack."""
    from streambench.capture.store import store_root as root_of

    return root_of(explicit)


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="store root: a path or any fsspec URL "
        "(default: $STREAMBENCH_STORE, else ./data)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document for machines")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str, sort_keys=False)
    sys.stdout.write("\n")


def is_terminal() -> bool:
    return sys.stderr.isatty()


def exit_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Get ``sig`` when the parent dies, so a run killed by -9 leaves no child behind.

    For the child processes a run starts (``serve`` for ``url: embedded``,
    ``proxy`` for ``via: proxy``); Linux only, elsewhere a no-op.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        return  # not Linux: the parent's clean shutdown still ends the child
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def log_to_stderr(name: str, prefix: str) -> None:
    """Human log lines of a child command (``serve``, ``proxy``) go to stderr, each
    line starting with ``prefix`` (stdout is for the ready line only)."""
    from streambench.logs import get_logger

    logger = get_logger(name)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_coroutine(coro: Coroutine[Any, Any, None]) -> None:
    """Run a child command's main coroutine on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
