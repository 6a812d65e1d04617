"""Retention and erasure: ``streambench prune`` and ``streambench forget``.

``prune`` deletes the date partitions of each run that are older than the run's
``capture.retention_days`` (from its manifest; 14 when the manifest is gone).
A partition of day D is expired when D + retention_days < today (UTC). It
deletes completed part files one by one and then removes the directories that
are left empty, so it is safe while a run is writing: hidden temporary files
(``.part-….tmp``) are never touched and keep their directory, and nothing
younger than retention is touched, whatever the run's status. Symbolic links
are never followed: a linked partition or part is skipped and reported.

``forget`` erases one data subject: it hashes the raw id under the key of
every period found in each run's hashed values (the key file or
``$STREAMBENCH_HASH_KEY`` the run used; destroyed periods cannot be searched,
and their data is unlinkable anyway), removes the rows whose payload carries
one of those hashes, and rewrites each affected part atomically (temporary
name, then rename; a part left empty is deleted).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streambench.capture.keys import KeyProvider, hash_value, load_key_provider
from streambench.cli_common import add_json, add_store, print_json, store_root
from streambench.errors import StoreError

DEFAULT_RETENTION_DAYS = 14
TABLES = ("events", "faults", "health")
_DATE_DIR = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
_HASH_PERIOD = r"h1:(?P<period>[0-9A-Za-z-]+):[0-9a-f]{16}"


@dataclass
class PruneReport:
    """What prune deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool
    partitions: list[dict[str, Any]] = field(default_factory=list)  # table, date, run_id, ...
    bytes_freed: int = 0
    skipped: list[str] = field(default_factory=list)  # symlinks, never followed

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prune(store: Any, *, now: datetime | None = None, dry_run: bool = False) -> PruneReport:
    """Delete expired date partitions of every run in ``store`` (a Store); see module doc."""
    root = _local_root(store)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    retention = _retention_by_run(store)
    report = PruneReport(dry_run=dry_run)
    for table in TABLES:
        for day, run_id, run_dir in _partitions(os.path.join(root, table), report):
            days = retention.get(run_id, DEFAULT_RETENTION_DAYS)
            if day + timedelta(days=days) >= today:
                continue
            files, size = _delete_parts(run_dir, dry_run=dry_run, report=report)
            if files:
                report.partitions.append({"table": table, "date": day.isoformat(),
                                          "run_id": run_id, "files": files, "bytes": size})
                report.bytes_freed += size
            if not dry_run:
                _remove_if_empty(run_dir)
                _remove_if_empty(os.path.dirname(run_dir))
    return report


def forget(store: Any, *, subject: str) -> ForgetReport:
    """Remove every event row whose hashed fields hold ``subject``; see module doc."""
    _local_root(store)
    report = ForgetReport()
    searched: set[str] = set()
    missing: set[str] = set()
    for run_id, provider in _providers(store).items():
        if provider is None:
            report.runs_without_key.append(run_id)
            continue
        removed = 0
        for path in store.parts("events", run_id):
            if os.path.islink(path):
                continue
            removed += _forget_in_part(path, subject, provider, report=report,
                                       searched=searched, missing=missing)
        if removed:
            report.rows_removed[run_id] = removed
    report.periods_searched = sorted(searched)
    report.periods_without_key = sorted(missing)
    return report


# -- prune helpers ---------------------------------------------------------------
def _local_root(store: Any) -> str:
    if not getattr(store, "local", False):
        raise StoreError(f"store {store.root}: prune and forget work on local stores only")
    return str(store.path)


def _retention_by_run(store: Any) -> dict[str, int]:
    days = {}
    for manifest in store.runs():
        capture = (manifest.get("scenario") or {}).get("capture") or {}
        value = capture.get("retention_days", DEFAULT_RETENTION_DAYS)
        days[str(manifest["run_id"])] = int(value) if isinstance(value, int) else (
            DEFAULT_RETENTION_DAYS)
    return days


def _partitions(table_dir: str, report: PruneReport):  # type: ignore[no-untyped-def]
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


def _delete_parts(run_dir: str, *, dry_run: bool, report: PruneReport) -> tuple[int, int]:
    files = size = 0
    for entry in _entries(run_dir):
        if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
            continue  # temporary parts of a writer, or not ours
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            report.skipped.append(entry.path)
            continue
        nbytes = entry.stat(follow_symlinks=False).st_size
        if not dry_run:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another prune got there first
        files, size = files + 1, size + nbytes
    return files, size


def _remove_if_empty(path: str) -> None:
    with contextlib.suppress(OSError):  # not empty (a writer's temporary file): keep it
        os.rmdir(path)


# -- forget helpers ----------------------------------------------------------------
def _providers(store: Any) -> dict[str, KeyProvider | None]:
    """The key provider of each run that hashed something (readers never add keys)."""
    providers: dict[str, KeyProvider | None] = {}
    for manifest in store.runs():
        capture = (manifest.get("scenario") or {}).get("capture") or {}
        redaction = capture.get("redaction") or {}
        if redaction.get("hash"):
            providers[str(manifest["run_id"])] = load_key_provider(
                key_file=redaction.get("key_file"), create_missing=False)
    return providers


def _forget_in_part(path: str, subject: str, provider: KeyProvider | None, *,
                    report: ForgetReport, searched: set[str], missing: set[str]) -> int:
    table = pq.read_table(path)
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
        hit = pc.or_(hit, pc.fill_null(pc.match_substring(payload, token), False))
    removed = pc.sum(hit).as_py() or 0
    if removed:
        _rewrite(path, table.filter(pc.invert(hit)), report)
    return int(removed)


def _rewrite(path: str, kept: pa.Table, report: ForgetReport) -> None:
    """Replace a part atomically: write a hidden temporary file, rename it over."""
    if kept.num_rows == 0:
        os.unlink(path)
        report.parts_deleted += 1
        return
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.forget.{os.getpid()}.tmp")
    pq.write_table(kept, tmp, compression="zstd")
    os.replace(tmp, path)
    report.parts_rewritten += 1


# -- CLI -----------------------------------------------------------------------------
def register(sub: Any) -> None:
    """Add ``prune`` and ``forget`` to the ``streambench`` sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "prune", help="delete date partitions older than each run's retention")
    p.add_argument("--dry-run", action="store_true", help="report what would be deleted")
    add_store(p)
    add_json(p)
    p.set_defaults(handler=_prune_command)
    f: argparse.ArgumentParser = sub.add_parser(
        "forget", help="erase every row whose hashed fields hold a subject's id")
    f.add_argument("--subject", required=True, metavar="RAW",
                   help="the raw id (as it appeared in payloads before hashing)")
    add_store(f)
    add_json(f)
    f.set_defaults(handler=_forget_command)


def _prune_command(args: argparse.Namespace) -> int:
    from streambench.capture.store import Store

    report = prune(Store(store_root(args.store)), dry_run=args.dry_run)
    if args.json:
        print_json(report.to_dict())
        return 0
    verb = "would delete" if report.dry_run else "deleted"
    for part in report.partitions:
        print(f"{verb} {part['table']}/date={part['date']}/run_id={part['run_id']}: "
              f"{part['files']} parts, {part['bytes']:,} bytes")
    for path in report.skipped:
        print(f"skipped {path} (symbolic link, not followed)")
    print(f"{verb} {len(report.partitions)} partitions, {report.bytes_freed:,} bytes")
    return 0


def _forget_command(args: argparse.Namespace) -> int:
    from streambench.capture.store import Store

    report = forget(Store(store_root(args.store)), subject=args.subject)
    if args.json:
        print_json(report.to_dict())
        return 0
    for run_id, rows in sorted(report.rows_removed.items()):
        print(f"run {run_id}: {rows} rows removed")
    if report.runs_without_key:
        print("runs not searched, their hash key is not available here: "
              + ", ".join(report.runs_without_key))
    if report.periods_without_key:
        print("periods whose key is destroyed (unlinkable, not searched): "
              + ", ".join(report.periods_without_key))
    total = sum(report.rows_removed.values())
    print(f"removed {total} rows ({report.parts_rewritten} parts rewritten, "
          f"{report.parts_deleted} deleted)")
    return 0
