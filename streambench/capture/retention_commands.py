"""``streambench prune`` and ``streambench forget``: thin wrappers over retention.py."""

from __future__ import annotations

import argparse
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root


def register(sub: Any) -> None:
    """Add ``prune`` and ``forget`` to the ``streambench`` sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "prune", help="delete date partitions older than each run's retention",
        description="Delete date partitions older than each run's capture.retention_days, "
        "and what crashes left behind (temporary files of runs no longer written). "
        "Recorded in the audit log.")
    p.add_argument("--dry-run", action="store_true", help="report what would be deleted")
    add_store(p)
    add_json(p)
    p.set_defaults(handler=_prune_command)
    f: argparse.ArgumentParser = sub.add_parser(
        "forget", help="erase every row whose hashed fields hold a subject's id",
        description="Erase every row whose hashed fields hold a subject's id. Refused while "
        "a run is being written. Recorded in the audit log with the subject as its keyed "
        "hashes only.")
    f.add_argument("--subject", required=True, metavar="RAW",
                   help="the raw id (as it appeared in payloads before hashing)")
    add_store(f)
    add_json(f)
    f.set_defaults(handler=_forget_command)


def _prune_command(args: argparse.Namespace) -> int:
    from streambench.capture.retention import prune
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
    if report.leftovers:
        print(f"{verb} {len(report.leftovers)} temporary files left by crashes")
    print(f"{verb} {len(report.partitions)} partitions, {report.bytes_freed:,} bytes")
    return 0


def _forget_command(args: argparse.Namespace) -> int:
    from streambench.capture.erase import forget
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
