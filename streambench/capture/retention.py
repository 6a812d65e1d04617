"""Retention: ``streambench prune`` (local stores); erasure (``forget``) is in erase.py.

``prune`` deletes the date partitions of each run that are older than the run's
``capture.retention_days`` (from its manifest; 14 when the manifest is gone or
says something unusable). A partition of day D is expired when D +
retention_days < today (UTC); any number of days works (it is compared, never
added to a date). Files are deleted one by one under the run's exclusive lock
(locks.py), then the directories left empty, so it is safe while a run
writes: nothing younger than retention is touched, whatever the run's status.
It also clears what crashes leave behind once their run is no longer being
written (leftovers.py). Symbolic links are never followed: a linked
partition or part is skipped and reported. Each prune appends to the audit
log (audit.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streambench.capture import audit
from streambench.capture.catalog import in_progress
from streambench.capture.erase import ForgetReport, forget, local_root
from streambench.capture.leftovers import clear_leftovers

__all__ = ["DEFAULT_RETENTION_DAYS", "ForgetReport", "PruneReport", "forget", "prune",
           "retention_days"]

DEFAULT_RETENTION_DAYS = 14
TABLES = ("events", "faults", "health")
_DATE_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


@dataclass
class PruneReport:
    """What prune deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool
    partitions: list[dict[str, Any]] = field(default_factory=list)  # table, date, run_id, ...
    bytes_freed: int = 0
    rows: int = 0
    skipped: list[str] = field(default_factory=list)  # symlinks, never followed
    leftovers: list[str] = field(default_factory=list)  # temporary files of ended runs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prune(store: Any, *, now: datetime | None = None, dry_run: bool = False,
          audited: bool = True) -> PruneReport:
    """Delete expired date partitions of every run in ``store`` (a Store); see module doc."""
    root = local_root(store, "prune")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    manifests = {str(m["run_id"]): m for m in store.runs()}
    report = PruneReport(dry_run=dry_run)
    with store.errors("prune"):
        for table in TABLES:
            for day, run_id, run_dir in _partitions(os.path.join(root, table), report):
                if (today - day).days > retention_days(manifests.get(run_id)):
                    _prune_partition(store, (table, day, run_id), run_dir, report)
        active = {r for r, m in manifests.items() if in_progress(m)}
        report.leftovers = clear_leftovers(store, active, dry_run=dry_run)
    if audited:
        audit.record(store, "prune", arguments={"dry_run": dry_run}, changed=_changed(
            report, dry_run), details={"leftovers": len(report.leftovers)})
    return report


def retention_days(manifest: dict[str, Any] | None) -> int:
    """A run's retention in days; the default when absent or not a positive integer."""
    capture = ((manifest or {}).get("scenario") or {}).get("capture") or {}
    value = capture.get("retention_days", DEFAULT_RETENTION_DAYS) if isinstance(
        capture, dict) else None
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return value if ok else DEFAULT_RETENTION_DAYS  # type: ignore[return-value]


def _prune_partition(store: Any, partition: tuple[str, date, str], run_dir: str,
                     report: PruneReport) -> None:
    table, day, run_id = partition
    with store.locks.exclusive(run_id) if not report.dry_run else contextlib.nullcontext():
        files, size, rows = _delete_parts(run_dir, dry_run=report.dry_run, report=report)
        if not report.dry_run:
            _remove_if_empty(run_dir)
            _remove_if_empty(os.path.dirname(run_dir))
    if files:
        report.partitions.append({"table": table, "date": day.isoformat(), "run_id": run_id,
                                  "files": files, "bytes": size, "rows": rows})
        report.bytes_freed += size
        report.rows += rows


def _changed(report: PruneReport, dry_run: bool) -> dict[str, Any]:
    if dry_run:
        return {"runs": [], "partitions": 0, "files": 0, "rows": 0, "bytes": 0}
    return {"runs": sorted({p["run_id"] for p in report.partitions}),
            "partitions": len(report.partitions),
            "files": sum(p["files"] for p in report.partitions),
            "rows": report.rows, "bytes": report.bytes_freed}


# -- prune helpers ---------------------------------------------------------------
def _partitions(table_dir: str, report: PruneReport) -> Iterator[tuple[date, str, str]]:
    """(day, run_id, run_dir) below ``table_dir``, never through a symlink."""
    for day_entry in _entries(table_dir):
        match = _DATE_DIR.fullmatch(day_entry.name)
        if not match:
            continue
        if day_entry.is_symlink():
            report.skipped.append(day_entry.path)
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        for run_entry in _entries(day_entry.path):
            if not run_entry.name.startswith("run_id="):
                continue
            if run_entry.is_symlink():
                report.skipped.append(run_entry.path)
                continue
            if run_entry.is_dir(follow_symlinks=False):
                yield day, run_entry.name.removeprefix("run_id="), run_entry.path


def _entries(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _delete_parts(run_dir: str, *, dry_run: bool, report: PruneReport) -> tuple[int, int, int]:
    files = size = rows = 0
    for entry in _entries(run_dir):
        if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
            continue  # temporary files of a writer, or not ours
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            report.skipped.append(entry.path)
            continue
        nbytes = entry.stat(follow_symlinks=False).st_size
        try:
            count = pq.read_metadata(entry.path).num_rows
        except (OSError, pa.ArrowException):
            count = 0  # a foreign or broken file: deleted, counted as no rows
        if not dry_run:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another prune got there first
        files, size, rows = files + 1, size + nbytes, rows + count
    return files, size, rows


def _remove_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):  # not empty (a writer's temporary file): keep it
        os.rmdir(path)


