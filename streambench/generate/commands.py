"""``streambench run``: run a scenario, show progress, print the summary."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from streambench.cli_common import add_json, add_store, is_terminal, print_json, store_root
from streambench.scenario.model import parse_duration


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run", help="run a scenario and capture every event",
        description="Run a scenario against its target (url: embedded starts the built-in "
        "one), capture every event to the store and print a summary. Exits 1 when the run "
        "did not complete, or when most replies matched no request (the summary shows a "
        "sample and what was looked for).",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML file")
    overrides = p.add_argument_group("overrides")
    overrides.add_argument("--rate", type=float, help="messages/s over all connections")
    overrides.add_argument("--connections", type=int, help="number of connections")
    overrides.add_argument("--duration", type=parse_duration, help="e.g. 30s, 5m")
    overrides.add_argument("--target", metavar="URL", help="target URL, or 'embedded'")
    overrides.add_argument("--seed", type=int, help="seed for schedules and synthetic data")
    overrides.add_argument("--source-address", action="append", metavar="ADDR",
                           dest="source_addresses",
                           help="open WebSocket connections from this local address, network "
                           "(127.0.0.0/29) or interface; repeat to spread them round robin "
                           "(target.source_addresses; see docs/scale.md)")
    add_store(p)
    add_json(p)
    p.add_argument("--run-id", help="use this run id instead of a generated one")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="live progress on stderr (auto: only on a terminal)")
    scale = p.add_argument_group("scale (see docs/scale.md)")
    scale.add_argument("--workers", type=_positive, metavar="N",
                       help="processes sharing the connections (default: every core; "
                       "1 runs in this process)")
    scale.add_argument("--cluster", metavar="ADDRESS",
                       help="run the shards on a Dask cluster: tcp://scheduler:8786, "
                       "or local:N for a local one with N worker processes")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from streambench.analyze.diagnose import mostly_unmatched, unmatched_line
    from streambench.analyze.summary import format_summary
    from streambench.api import execute
    from streambench.capture.store import Store
    from streambench.errors import RunInterrupted, StreambenchError
    from streambench.generate.engine.run import new_run_id
    from streambench.scenario.load import load_scenario, with_overrides

    scenario = with_overrides(
        load_scenario(args.scenario), rate=args.rate, connections=args.connections,
        duration=args.duration, target=args.target, seed=args.seed,
        source_addresses=args.source_addresses,
    )
    store = Store(store_root(args.store))
    show = args.progress == "always" or (args.progress == "auto" and is_terminal())
    run_id = args.run_id or new_run_id(scenario.name)
    try:
        result = execute(scenario, store=store, workers=args.workers, cluster=args.cluster,
                         run_id=run_id, on_progress=_progress_printer() if show else None)
    except RunInterrupted as exc:
        summary = _summary_after_interrupt(store, exc.run_id)
        _print(summary, as_json=args.json, format_summary=format_summary)
        print(f"streambench: {exc}", file=sys.stderr)
        return 130
    except StreambenchError:
        # a run that failed after capturing something (a full disk): say what was kept,
        # then the one-line error (printed by the CLI's main)
        kept = _summary_after_failure(store, run_id)
        if kept is not None:
            _print(kept, as_json=args.json, format_summary=format_summary)
        raise
    _print(result.summary, as_json=args.json, format_summary=format_summary)
    replies = result.summary.get("replies")
    if replies is not None and mostly_unmatched(replies):
        print(f"streambench: {unmatched_line(replies)}", file=sys.stderr)
        return 1
    return 0 if result.status == "completed" else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _summary_after_failure(store: Any, run_id: str) -> dict[str, Any] | None:
    """The summary of what a failed run captured; None if it captured nothing (or was
    never started: the error came before its manifest)."""
    from streambench.analyze.summary import summarize
    from streambench.capture.catalog import in_progress
    from streambench.errors import StreambenchError

    try:
        manifest = store.manifest(run_id)
        if manifest.get("pid") != os.getpid():  # not this run: its id was taken already
            return None
        if in_progress(manifest) or not (manifest.get("counts") or {}).get("events"):
            return None
        return summarize(store.events(run_id), manifest)
    except StreambenchError:
        return None


def _summary_after_interrupt(store: Any, run_id: str) -> dict[str, Any]:
    from streambench.analyze.summary import summarize

    return summarize(store.events(run_id), store.manifest(run_id))


def _print(summary: dict[str, Any], *, as_json: bool, format_summary: Any) -> None:
    if as_json:
        print_json(summary)
    else:
        print(format_summary(summary))


def _progress_printer() -> Any:
    tty = is_terminal()

    def show(progress: Any) -> None:
        end = "\n" if progress.final or not tty else ""
        sys.stderr.write(("\r" if tty else "") + progress.line() + end)
        sys.stderr.flush()

    return show
