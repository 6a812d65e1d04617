"""Reading run manifests: what counts as a run, who owns a run id, is it still running.

A file in ``runs/`` is a run only if it is a JSON object whose ``run_id`` is a
valid run id (:mod:`streambench.capture.names`) equal to the file's own name;
anything else (a stray ``[]``, a torn or foreign file) is skipped with one
warning naming the file, so one bad file never stops ``runs``, ``prune``,
``forget`` or an analysis.

A manifest that still says ``running`` but whose process is gone from this
host (``kill -9``) reads as ``aborted`` with ``stale: true``. A run that is
really running (or running on another host, which cannot be checked) is
*in progress*: gates refuse it and ``latest`` never picks it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

from streambench.capture.names import is_run_id
from streambench.logs import get_logger

log = get_logger("streambench.store")
MANIFEST_SUFFIX = ".json"


def parse_manifest(data: bytes, *, run_id: str) -> tuple[dict[str, Any] | None, str]:
    """(manifest, "") for a valid manifest of ``run_id``, else (None, why it is not one)."""
    if not data.strip():
        return None, "empty file"
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not JSON ({str(exc).splitlines()[0][:80]})"
    why = _problem(manifest, run_id)
    return (None, why) if why else (mark_stale(manifest), "")


def _problem(manifest: Any, run_id: str) -> str:
    """Why a parsed JSON document is not the manifest of ``run_id`` ("" if it is)."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    found = manifest.get("run_id")
    if not is_run_id(found):
        return "no valid run_id"
    if found != run_id:
        return f"its run_id {found!r} is not its file name"
    if not isinstance(manifest.get("scenario", {}), dict):
        return "its scenario is not an object"
    return ""


def manifest_run_id(name: str) -> str | None:
    """The run id a file name in ``runs/`` stands for, or None if it is not a manifest."""
    if name.startswith(".") or not name.endswith(MANIFEST_SUFFIX):
        return None
    return name.removesuffix(MANIFEST_SUFFIX)


def owner(manifest: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """Who wrote a manifest: (host, pid, started). Rewrites by the same run keep it."""
    return manifest.get("host"), manifest.get("pid"), manifest.get("started")


def in_progress(manifest: Mapping[str, Any]) -> bool:
    """True while a run is still being written (after stale runs were marked)."""
    return manifest.get("status") == "running"


def mark_stale(manifest: dict[str, Any]) -> dict[str, Any]:
    """A ``running`` manifest whose process is gone from this host is an aborted run."""
    if manifest.get("status") != "running":
        return manifest
    host, pid = manifest.get("host"), manifest.get("pid")
    if host == socket.gethostname() and isinstance(pid, int) and not alive(pid):
        return {**manifest, "status": "aborted", "stale": True}
    return manifest


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:  # not a pid this system can have
        return False
    except PermissionError:  # someone else's process
        return True
    return True
