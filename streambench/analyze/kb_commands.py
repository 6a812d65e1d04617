"""``streambench kb list | show FP | resolve FP --fix ID | feedback FP --fix ID --worked``."""

from __future__ import annotations

import argparse
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root
from streambench.errors import ConfigError


def register_kb(subparsers: Any) -> None:
    text = "the knowledge base: recurring problems, what fixed them, fix feedback"
    parser = subparsers.add_parser("kb", help=text, description=text)
    actions = parser.add_subparsers(dest="kb_action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every fingerprint with recurrence and MTTR")
    show = actions.add_parser("show", help="everything known about one fingerprint")
    show.add_argument("fingerprint", metavar="FP")
    resolve = actions.add_parser("resolve", help="record the fix that resolved a problem")
    resolve.add_argument("fingerprint", metavar="FP")
    resolve.add_argument("--fix", required=True, metavar="ID", help="fix id (rules/fixes.yaml)")
    resolve.add_argument("--note", default="", help="free text")
    feedback = actions.add_parser("feedback", help="record whether a suggested fix worked")
    feedback.add_argument("fingerprint", metavar="FP")
    feedback.add_argument("--fix", required=True, metavar="ID")
    verdict = feedback.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--worked", dest="worked", action="store_true")
    verdict.add_argument("--did-not-work", dest="worked", action="store_false")
    feedback.add_argument("--note", default="")
    for sub in (listing, show, resolve, feedback):
        add_store(sub)
        add_json(sub)
        sub.set_defaults(handler=_kb)


def _kb(args: argparse.Namespace) -> int:
    from streambench.analyze.kb import KnowledgeBase

    kb = KnowledgeBase(store_root(args.store))
    if args.kb_action == "list":
        _list(kb, as_json=args.json)
        return 0
    if args.kb_action == "show":
        _show(kb, args.fingerprint, as_json=args.json)
        return 0
    if kb.show(args.fingerprint)["summary"] is None:  # a typo must not be recorded
        raise ConfigError(f"kb {args.kb_action}: no fingerprint {args.fingerprint!r} in the "
                          "knowledge base (see `streambench kb list`)")
    if args.kb_action == "resolve":
        kb.resolve(args.fingerprint, fix=args.fix, note=args.note)
    else:
        kb.add_feedback(args.fingerprint, fix=args.fix, worked=args.worked, note=args.note)
    if args.json:
        print_json({"fingerprint": args.fingerprint, "fix": args.fix, "recorded": True})
    else:
        print(f"recorded {args.kb_action} of {args.fix} for {args.fingerprint}")
    return 0


def _list(kb: Any, *, as_json: bool) -> None:
    from streambench.analyze.render import table

    rows = kb.summary().to_dicts()
    if as_json:
        print_json(rows)
        return
    columns = [
        ("fingerprint", "fingerprint"), ("kind", "kind"), ("occurrences", "seen"),
        ("runs", "runs"), ("first_seen", "first seen"), ("last_seen", "last seen"),
        ("resolutions", "resolved"), ("mttr_s", "MTTR s"), ("last_fix", "last fix"),
    ]  # fmt: skip
    print(table(rows, columns) if rows else "knowledge base is empty")


def _show(kb: Any, fingerprint: str, *, as_json: bool) -> None:
    from streambench.analyze.render import key_values, table

    doc = kb.show(fingerprint)
    if as_json:
        print_json(doc)
    elif doc["summary"] is None:
        print(f"no occurrences of {fingerprint!r}")
    else:
        print(key_values(doc["summary"]))
        for name in ("resolutions", "feedback"):
            if doc[name]:
                print(f"\n{name}:")
                print(table(doc[name], [(k, k) for k in doc[name][0] if k != "fingerprint"]))
