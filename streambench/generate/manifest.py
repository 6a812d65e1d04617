"""Run manifests: what ran, where, how it ended, and what was captured.

A manifest never holds a secret: the scenario goes in through
``public_dump`` (``${ENV}`` templates stay unresolved, literal credentials
are replaced), and redaction is recorded by rule and count, never by value.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

from streambench import __version__
from streambench.capture.schema import SCHEMA_VERSION
from streambench.capture.store import Store
from streambench.scenario.model import Scenario
from streambench.scenario.secrets import public_dump

_PACKAGES = ("websockets", "aiohttp", "aiomqtt", "polars", "pyarrow", "uvloop")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: Any) -> dt.datetime | None:
    """A manifest timestamp (``utc_now()``'s ISO form) as an aware datetime; None if absent."""
    if not isinstance(text, str):
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def versions() -> dict[str, str]:
    found = {"streambench": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def start_manifest(scenario: Scenario, *, run_id: str, store: Store) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "scenario": public_dump(scenario),
        "started": utc_now(),
        "ended": None,
        "status": "running",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": [_scrub(a) for a in sys.argv],
        "versions": versions(),
        "store": store.root,
    }


def finish_manifest(manifest: dict[str, Any], *, status: str, error: str | None,
                    writer: Any, redactor: Any, reason: str | None) -> dict[str, Any]:
    finished = {
        **manifest,
        "ended": utc_now(),
        "status": status,
        "counts": {
            "events": writer.events.rows_written,
            "event_bytes": writer.events.bytes_written,
            "parts": writer.events.parts_written,
            "faults": writer.faults.rows_written,
        },
        "redaction": dict(getattr(redactor, "counts", {})),
    }
    if error is not None:
        finished["error"] = error
    if reason is not None:
        finished["abort_reason"] = reason
    return finished


def _scrub(arg: str) -> str:
    """Command lines can carry secrets (``--header Authorization=...``): keep flags only."""
    return arg if arg.startswith("-") or "=" not in arg else arg.split("=", 1)[0] + "=<redacted>"
