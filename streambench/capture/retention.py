"""Retention and erasure: ``streambench prune`` and ``streambench forget`` (local stores).

``prune`` deletes the date partitions of each run that are older than the run's
``capture.retention_days`` (from its manifest; 14 when the manifest is gone or
says something unusable). A partition of day D is expired when D +
retention_days < today (UTC); any number of days works (it is compared, never
added to a date). Files are deleted one by one under the run's exclusive lock
(locks.py), then the directories left empty, so it is safe while a run
writes: nothing younger than retention is touched, whatever the run's status.
It also clears what crashes leave behind, once their run is no longer being
written: hidden ``*.tmp`` files older than a minute, a run's reserved manifest
space, and compaction debris. Symbolic links are never followed: a linked
partition or part is skipped and reported.

``forget`` erases one data subject: it hashes the raw id under the key of
every period found in each run's hashed values (the key file or
``$STREAMBENCH_HASH_KEY`` the run used; destroyed periods cannot be searched,
and their data is unlinkable anyway), removes the rows whose payload carries
one of those hashes, and rewrites each affected file atomically. It refuses
while any run is still being written (its later parts could hold the subject
again) and holds each run's locks, so two ``forget`` at once, or a
compaction, never lose each other's rows. Both commands append to the audit
log (audit.py); ``forget`` records the subject only as the hashes searched.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streambench.capture import audit
from streambench.capture.catalog import in_progress
from streambench.capture.files import is_temporary
from streambench.capture.keys import KeyProvider, hash_value, load_key_provider
from streambench.capture.merge import SOURCES_KEY
from streambench.errors import RunInProgress, StoreError

DEFAULT_RETENTION_DAYS = 14
TABLES = ("events", "faults", "health")
TEMPORARY_GRACE_S = 60.0  # a temporary file younger than this may still be in use
_DATE_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_HASH_PERIOD = r"h1:(?P<period>[0-9A-Za-z-]+):[0-9a-f]{16}"


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


@dataclass
class ForgetReport:
    """Rows removed for one subject, by run; the subject itself is not recorded."""

    rows_removed: dict[str, int] = field(default_factory=dict)
    parts_rewritten: int = 0
    parts_deleted: int = 0
    periods_searched: list[str] = field(default_factory=list)
    periods_without_key: list[str] = field(default_factory=list)
    runs_without_key: list[str] = field(default_factory=list)  # hashed, but no key here
    subject_hashes: set[str] = field(default_factory=set)  # what was searched, for the audit

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("subject_hashes")
        return found


def prune(store: Any, *, now: datetime | None = None, dry_run: bool = False,
          audited: bool = True) -> PruneReport:
    """Delete expired date partitions of every run in ``store`` (a Store); see module doc."""
    root = _local_root(store, "prune")
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    manifests = {str(m["run_id"]): m for m in store.runs()}
    report = PruneReport(dry_run=dry_run)
    with store.errors("prune"):
        for table in TABLES:
            for day, run_id, run_dir in _partitions(os.path.join(root, table), report):
                if (today - day).days > retention_days(manifests.get(run_id)):
                    _prune_partition(store, (table, day, run_id), run_dir, report)
        active = {r for r, m in manifests.items() if in_progress(m)}
        _clear_leftovers(store, root, active, report)
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


def forget(store: Any, *, subject: str, audited: bool = True) -> ForgetReport:
    """Remove every event row whose hashed fields hold ``subject``; see module doc."""
    _local_root(store, "forget")
    running = [m for m in store.runs() if in_progress(m)]
    if running:
        raise RunInProgress(store.root, running[0], doing="forget")
    report = ForgetReport()
    searched: set[str] = set()
    missing: set[str] = set()
    with store.errors("forget"):
        for run_id, provider in _providers(store).items():
            if provider is None:
                report.runs_without_key.append(run_id)
                continue
            removed = _forget_in_run(store, run_id, subject, provider, report=report,
                                     searched=searched, missing=missing)
            if removed:
                report.rows_removed[run_id] = removed
    report.periods_searched = sorted(searched)
    report.periods_without_key = sorted(missing)
    if audited:
        audit.record(store, "forget", arguments={"subject": subject}, changed={
            "runs": sorted(report.rows_removed), "partitions": 0,
            "files": report.parts_rewritten + report.parts_deleted,
            "rows": sum(report.rows_removed.values()), "bytes": 0},
            details={"subject_hashes": sorted(report.subject_hashes),
                     "periods_without_key": report.periods_without_key,
                     "runs_without_key": report.runs_without_key})
    return report


def _forget_in_run(store: Any, run_id: str, subject: str, provider: KeyProvider, *,
                   report: ForgetReport, searched: set[str], missing: set[str]) -> int:
    removed = 0
    # No compaction of this run while its files are read and rewritten one by one.
    with store.locks.exclusive(run_id, ".compact"):
        for path in store.parts("events", run_id):
            if os.path.islink(path):
                continue
            with store.locks.exclusive(run_id):
                removed += _forget_in_part(store, path, subject, provider, report=report,
                                           searched=searched, missing=missing)
    return removed


# -- prune helpers ---------------------------------------------------------------
def _local_root(store: Any, command: str) -> str:
    if not getattr(store, "local", False):
        raise StoreError(f"store {store.root}: {command} works on local stores only")
    return str(store.path)


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


def _clear_leftovers(store: Any, root: str, active: set[str], report: PruneReport) -> None:
    """Temporary files, reserves and compaction debris of runs no longer written."""
    from streambench.capture.compact import recover
    from streambench.capture.leases import compaction_guard

    cutoff = time.time() - TEMPORARY_GRACE_S
    for directory, names in _walk(root):
        run_id = _owner(directory, root)
        for name in names:
            path = os.path.join(directory, name)
            debris = is_temporary(name) or name.endswith(".reserve")
            owner = run_id or _reserve_owner(name)
            if not debris or owner in active or _mtime(path) > cutoff:
                continue
            report.leftovers.append(path)
            if not report.dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    if report.dry_run:
        return
    for name, _ in store.list_dir(".compaction"):
        run_id = name.split(".", 1)[0]
        if run_id not in active:
            with contextlib.suppress(StoreError), compaction_guard(store, run_id):
                recover(store, run_id)


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


# -- forget helpers ----------------------------------------------------------------
def _providers(store: Any) -> dict[str, KeyProvider | None]:
    """The key provider of each run that hashed something (readers never add keys)."""
    providers: dict[str, KeyProvider | None] = {}
    for manifest in store.runs():
        capture = (manifest.get("scenario") or {}).get("capture") or {}
        redaction = capture.get("redaction") or {} if isinstance(capture, dict) else {}
        if isinstance(redaction, dict) and redaction.get("hash"):
            key_file = redaction.get("key_file")
            providers[str(manifest["run_id"])] = load_key_provider(
                key_file=key_file if isinstance(key_file, str) else None,
                create_missing=False)
    return providers


def _forget_in_part(store: Any, path: str, subject: str, provider: KeyProvider | None, *,
                    report: ForgetReport, searched: set[str], missing: set[str]) -> int:
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        return 0  # deleted since listed (an earlier forget emptied it, or prune)
    if "payload" not in table.column_names or provider is None:
        return 0
    payload = table.column("payload").combine_chunks()
    periods = pc.unique(pc.struct_field(pc.extract_regex(payload, _HASH_PERIOD), [0]))
    periods = periods.drop_null()
    hit = pa.array([False] * table.num_rows)
    for period in periods.to_pylist():
        key = provider.key(period)
        if key is None:
            missing.add(period)
            continue
        searched.add(period)
        token = hash_value(key, period, subject)
        report.subject_hashes.add(token)
        hit = pc.or_(hit, pc.fill_null(pc.match_substring(payload, token), False))
    removed = pc.sum(hit).as_py() or 0
    if removed:
        _rewrite(store, path, table.filter(pc.invert(hit)), report)
    return int(removed)


def _rewrite(store: Any, path: str, kept: pa.Table, report: ForgetReport) -> None:
    """Replace a file atomically (temporary name, then rename); delete it if emptied."""
    if kept.num_rows == 0:
        os.unlink(path)
        report.parts_deleted += 1
        return
    metadata = {k: v for k, v in (kept.schema.metadata or {}).items() if k != SOURCES_KEY}
    with store.files.atomic(path) as f:  # its row lineage no longer holds: dropped
        pq.write_table(kept.replace_schema_metadata(metadata), f, compression="zstd")
    report.parts_rewritten += 1
