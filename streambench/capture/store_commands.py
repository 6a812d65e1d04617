"""``streambench compact | audit | permissions``: store upkeep, thin over the library."""

from __future__ import annotations

import argparse
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root


def register(sub: Any) -> None:
    c: argparse.ArgumentParser = sub.add_parser(
        "compact", help="merge a finished run's small parts into a few large files",
        description="Merge the small parts of each partition of a run into a few large "
        "files, atomically (readers see the old parts or the new file, never both). Runs "
        "compact themselves at the end and every few minutes; this is for a run left "
        "aborted or stale by a crash. Refused while the run is being written.")
    c.add_argument("run", metavar="RUN", nargs="+", help="run id(s), or 'latest'")
    add_store(c)
    add_json(c)
    c.set_defaults(handler=_compact)
    a: argparse.ArgumentParser = sub.add_parser(
        "audit", help="who pruned, forgot, compacted or changed keys, and what changed")
    a.add_argument("--command", dest="only", metavar="NAME",
                   help="only entries of this command (prune, forget, compact, keys, ...)")
    a.add_argument("--last", type=int, metavar="N", help="only the N most recent entries")
    add_store(a)
    add_json(a)
    a.set_defaults(handler=_audit)
    p: argparse.ArgumentParser = sub.add_parser(
        "permissions", help="make a local store private, or share it with a group",
        description="New stores are private (directories 0700, files 0600). --share-group "
        "gives the store to a group (directories 2770, files 0660; new files follow); "
        "--private takes it back. Never readable by others.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--share-group", metavar="GROUP", help="share with this Unix group")
    which.add_argument("--private", action="store_true", help="owner only")
    add_store(p)
    add_json(p)
    p.set_defaults(handler=_permissions)


def _compact(args: argparse.Namespace) -> int:
    from streambench.capture.compaction import compact_finished
    from streambench.capture.store import Store

    store = Store(store_root(args.store))
    reports = [compact_finished(store, run) for run in args.run]
    if args.json:
        print_json([r.to_dict() for r in reports])
        return 0
    for report in reports:
        print(f"run {report.run_id}: {report.files_before} files -> {report.files_after} "
              f"in {len(report.partitions)} partitions"
              + (f" ({len(report.skipped)} changed meanwhile, left for next time)"
                 if report.skipped else ""))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from streambench.capture.audit import read_entries
    from streambench.capture.store import Store

    entries = read_entries(Store(store_root(args.store)))
    if args.only:
        entries = [e for e in entries if e.get("command") == args.only]
    if args.last:
        entries = entries[-args.last:]
    if args.json:
        print_json(entries)
        return 0
    if not entries:
        print("no audit entries")
    for e in entries:
        changed = e.get("changed") or {}
        what = ", ".join(f"{k} {len(v) if isinstance(v, list) else v}"
                         for k, v in changed.items() if v)
        print(f"{e.get('time')}  {e.get('user')}@{e.get('host')}  {e.get('command')}  "
              f"{e.get('outcome')}  {what or 'nothing changed'}")
    return 0


def _permissions(args: argparse.Namespace) -> int:
    from streambench.capture import audit
    from streambench.capture.permissions import apply
    from streambench.capture.store import Store

    store = Store(store_root(args.store))
    if not store.local:
        from streambench.errors import StoreError

        raise StoreError(f"store {store.root}: permissions apply to local stores (an object "
                         "store's access is its bucket policy)")
    with store.errors("change permissions"):
        result = apply(store.path, group=args.share_group)
    audit.record(store, "permissions", arguments={"share_group": args.share_group,
                                                  "private": args.private},
                 changed={"runs": [], "partitions": 0, "files": result["paths"], "rows": 0,
                          "bytes": 0})
    if args.json:
        print_json(result)
    else:
        print(f"store {store.root} is {result['mode']}"
              + (f" (group {result['group']})" if result["group"] else "")
              + f"; {result['paths']} paths changed")
    return 0
