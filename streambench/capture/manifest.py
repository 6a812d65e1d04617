"""Run manifests: what ran, where, how it ended, and what was captured.

One JSON file per run at ``<store>/runs/<run_id>.json`` (the store contract
in DESIGN.md). Its keys are :class:`Manifest`; readers must tolerate keys
they do not know (later versions add some) and missing optional ones (older
runs lack them).

A manifest never holds a secret: the scenario goes in through
``public_dump`` (``${ENV}`` templates stay unresolved, literal credentials
are replaced), the command line is scrubbed, and redaction is recorded by
rule and count, never by value.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import platform
import socket
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any, NotRequired, TypedDict

from streambench import __version__
from streambench.capture.schema import SCHEMA_VERSION
from streambench.capture.status import RunStatus
from streambench.capture.store import Store
from streambench.capture.writer import CaptureCounts
from streambench.scenario.model import Scenario
from streambench.scenario.secrets import public_dump, scrub_argv

_PACKAGES = ("websockets", "aiohttp", "aiomqtt", "polars", "pyarrow", "uvloop")


class Manifest(TypedDict):
    """A run's manifest. The first group is always present; the rest once known."""

    schema_version: int
    run_id: str
    scenario: dict[str, Any]  # as resolved, secrets removed (public_dump)
    started: str  # ISO 8601 UTC, utc_now()
    ended: str | None
    status: RunStatus
    host: str
    pid: int
    argv: list[str]  # scrubbed of secrets
    versions: dict[str, str]
    store: str
    # once the run ended
    counts: NotRequired[CaptureCounts]
    redaction: NotRequired[dict[str, int]]  # rows touched, by rule
    error: NotRequired[str]  # why a failed run failed
    abort_reason: NotRequired[str]  # who stopped an aborted run (SIGINT, "stopped by user")
    # runs over several processes (streambench.generate.scale)
    execution: NotRequired[dict[str, Any]]
    workers: NotRequired[list[dict[str, Any]]]
    lost_workers: NotRequired[list[str]]
    # added by readers, never written: a running run whose process is gone
    stale: NotRequired[bool]


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
    """The versions this process runs with (a copy: the manifest's own)."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    # Once per process: reading package metadata costs tens of milliseconds a run, and
    # what the process imported does not change when a package is upgraded under it.
    found = {"streambench": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def start_manifest(scenario: Scenario, *, run_id: str, store: Store) -> Manifest:
    return Manifest(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        scenario=public_dump(scenario),
        started=utc_now(),
        ended=None,
        status="running",
        host=socket.gethostname(),
        pid=os.getpid(),
        argv=scrub_argv(sys.argv),
        versions=versions(),
        store=store.root,
    )


def finish_manifest(manifest: Manifest, *, status: RunStatus, error: str | None,
                    counts: CaptureCounts, redaction: Mapping[str, int],
                    reason: str | None) -> Manifest:
    """The manifest of a run that ended: status, end time, what was captured."""
    finished: Manifest = {**manifest, "ended": utc_now(), "status": status,
                          "counts": counts, "redaction": dict(redaction)}
    if error is not None:
        finished["error"] = error
    if reason is not None:
        finished["abort_reason"] = reason
    return finished
