"""``streambench runs``: list the runs in a store.

A run whose manifest says ``running`` but whose process is gone (kill -9)
shows as ``aborted`` with ``stale: true``.
"""

from __future__ import annotations

import argparse
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("runs", help="list the runs in the store")
    p.add_argument("--scenario", help="only runs of this scenario")
    p.add_argument("--last", type=int, metavar="N", help="only the N most recent runs")
    add_store(p)
    add_json(p)
    p.set_defaults(handler=_runs)


def run_rows(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run with the keys ``streambench runs --json`` promises."""
    return [
        {
            "run_id": m["run_id"],
            "scenario": m.get("scenario", {}).get("name"),
            "started": m.get("started"),
            "ended": m.get("ended"),
            "status": m.get("status"),
            "stale": bool(m.get("stale", False)),
            "events": (m.get("counts") or {}).get("events"),
        }
        for m in manifests
    ]


def _runs(args: argparse.Namespace) -> int:
    from streambench.capture.store import Store

    rows = run_rows(Store(store_root(args.store)).runs(scenario=args.scenario))
    if args.last:
        rows = rows[-args.last:]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no runs in {store_root(args.store)}")
        return 0
    header = ("RUN ID", "SCENARIO", "STARTED", "STATUS", "EVENTS")
    table = [header] + [(r["run_id"], r["scenario"] or "-", r["started"] or "-",
                         f"{r['status']} (stale)" if r["stale"] else r["status"],
                         "-" if r["events"] is None else str(r["events"])) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
