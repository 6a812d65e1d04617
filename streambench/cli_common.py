"""Options and output helpers shared by every sub-command module."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_STORE = "./data"


def store_root(explicit: str | None) -> str:
    """``--store``, else ``STREAMBENCH_STORE``, else ``./data``.

    An explicit but empty ``--store ''`` is an error (a script whose variable
    came out empty), not the default; an empty ``STREAMBENCH_STORE`` counts
    as unset, as an empty environment variable usually does.
    """
    if explicit is not None:
        if not explicit.strip():
            from streambench.errors import ConfigError

            raise ConfigError("--store: the store root is empty (give a path or a URL)")
        return explicit
    return os.environ.get("STREAMBENCH_STORE") or DEFAULT_STORE


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
