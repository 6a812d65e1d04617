"""What crashes leave behind, cleared by ``prune`` once their run is no longer written.

Hidden ``*.tmp`` files (a part or manifest a process was writing when it
died) older than :data:`TEMPORARY_GRACE_S`, a run's reserved manifest space
(``runs/.<id>.reserve``), and compaction debris (``.compaction/``: staged or
replaced directories, commit records), which the next compaction of the run
would also finish or roll back.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from streambench.capture.compact import recover
from streambench.capture.files import is_temporary
from streambench.capture.leases import compaction_guard
from streambench.errors import StoreError

TEMPORARY_GRACE_S = 60.0  # a temporary file younger than this may still be in use


def clear_leftovers(store: Any, active: set[str], *, dry_run: bool) -> list[str]:
    """Delete (or with ``dry_run`` list) the debris of runs not in ``active``."""
    root = str(store.path)
    found: list[str] = []
    cutoff = time.time() - TEMPORARY_GRACE_S
    for directory, names in _walk(root):
        run_id = _owner(directory, root)
        for name in names:
            path = os.path.join(directory, name)
            debris = is_temporary(name) or name.endswith(".reserve")
            owner = run_id or _reserve_owner(name)
            if not debris or owner in active or _mtime(path) > cutoff:
                continue
            found.append(path)
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    if dry_run:
        return found
    for name, _ in store.list_dir(".compaction"):
        run_id = name.split(".", 1)[0]
        if run_id not in active:
            with contextlib.suppress(StoreError), compaction_guard(store, run_id):
                recover(store, run_id)
    return found


def _walk(root: str) -> Iterator[tuple[str, list[str]]]:
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))
                   and d not in (".locks", ".compaction")]
        yield directory, files


def _owner(directory: str, root: str) -> str | None:
    """The run a folder belongs to (its ``run_id=`` component), if any."""
    for component in os.path.relpath(directory, root).split(os.sep):
        if component.startswith("run_id="):
            return component.removeprefix("run_id=")
    return None


def _reserve_owner(name: str) -> str | None:
    """``.<run>.reserve`` and ``.<run>.json.<pid>.<hex>.tmp`` in runs/ name their run."""
    stem = name.lstrip(".")
    for marker in (".reserve", ".json."):
        if marker in stem:
            return stem.split(marker, 1)[0]
    return None


def _mtime(path: str) -> float:
    try:
        return os.stat(path, follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return float("inf")
