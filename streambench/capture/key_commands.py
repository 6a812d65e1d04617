"""``streambench keys``: create, list and destroy the HMAC keys of hashed fields."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "keys", help="manage the keys that hash personal fields",
        description="Hashed fields (capture.redaction.hash) need a secret key: "
        "$STREAMBENCH_HASH_KEY, a scenario's key_file, or the default key file this "
        "command creates (~/.config/streambench/hash-keys.json). init and destroy are "
        "recorded in the audit log of the store (--store).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="create the key file if it does not exist")
    listing = actions.add_parser("list", help="periods whose key is held or destroyed")
    destroy = actions.add_parser(
        "destroy", help="destroy one period's key for good: its data becomes unlinkable")
    destroy.add_argument("period", help="period id, e.g. 2026-11 (monthly), 2026-W45, 2026-11-03")
    for action in (init, listing, destroy):
        action.add_argument("--file", type=Path, help="key file (default: the user's)")
    for action in (init, destroy):
        add_store(action)
    add_json(listing)
    p.set_defaults(handler=_keys)


def _keys(args: argparse.Namespace) -> int:
    from streambench.capture.keys import (
        create_key_file,
        default_key_file,
        destroy_period,
        read_key_file,
    )

    path = (args.file or default_key_file()).expanduser()
    if args.action == "init":
        if path.exists():
            read_key_file(path)  # an existing file must be a valid key file
            print(f"key file exists: {path}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            create_key_file(path)
            _audit(args, path, created=True)
            print(f"created key file {path} (mode 0600; keep it out of the repository)")
        return 0
    if args.action == "destroy":
        held = destroy_period(path, args.period)
        _audit(args, path, held=held)
        print(f"period {args.period}: " + ("key destroyed" if held else
                                           "no key was held; marked destroyed"))
        return 0
    doc = read_key_file(path)
    listing = {"file": str(path), "held": sorted(doc["periods"]), "destroyed": doc["destroyed"]}
    if args.json:
        print_json(listing)
    else:
        print(f"{path}\n  held: {', '.join(listing['held']) or '-'}\n"
              f"  destroyed: {', '.join(listing['destroyed']) or '-'}")
    return 0


def _audit(args: argparse.Namespace, path: Path, **what: bool) -> None:
    """Record a key action in the store's audit log (the key itself never)."""
    from streambench.capture import audit
    from streambench.capture.store import Store

    arguments = {"action": args.action, "file": str(path), "period": getattr(args, "period",
                                                                           None)}
    audit.record(Store(store_root(args.store)), "keys", arguments=arguments,
                 changed={"runs": [], "partitions": 0, "files": 1, "rows": 0, "bytes": 0},
                 details=what)
