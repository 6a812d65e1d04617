"""Options and output helpers shared by every sub-command module."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from streambench.capture.store import store_root

__all__ = ["add_json", "add_store", "is_terminal", "print_json", "store_root"]


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
