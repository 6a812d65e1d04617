"""``streambench metrics | slo | anomalies | compare | kb``: thin wrappers over the library.

Every command takes ``--store`` and a run id (or ``latest``); ``--json`` prints one
document for machines. Exit codes: 0 fine, 1 a gate failed (SLO breach,
anomaly at/above ``--fail-on``, regression with ``--gate``), 2 bad input. The
gates (``slo``, ``anomalies``, ``compare``) refuse, with exit 2, a run that is
still being written or captured nothing: no verdict is better than a wrong one.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root
from streambench.errors import ConfigError
from streambench.scenario.model import parse_duration


def register(subparsers: Any) -> None:
    _metrics_parser(subparsers)
    _slo_parser(subparsers)
    _anomalies_parser(subparsers)
    _compare_parser(subparsers)
    from streambench.analyze.kb_commands import register_kb

    register_kb(subparsers)


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a window must be longer than 0s")
    return value


def _run_parser(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text,
                                                            description=help_text)
    parser.add_argument("run", metavar="RUN", help="run id, or 'latest'")
    add_store(parser)
    add_json(parser)
    return parser


def load_run(args: argparse.Namespace, run: str, *, window: float = 1.0,
             gate: str = "") -> tuple[Any, Any, dict[str, Any]]:
    """(store, metrics, manifest) of ``run`` in the store named by ``args``.

    A ``gate`` (its name) judges only a run that is finished and captured
    something: a run still being written, or an empty one, is a one-line
    error (exit 2), never a verdict.
    """
    from streambench.analyze.measure import metrics
    from streambench.capture.store import Store

    store = Store(store_root(args.store))
    run_id = store.resolve_run(run)
    manifest = store.judged_manifest(run_id, doing=gate) if gate else store.manifest(run_id)
    measured = metrics(store.events(run_id), window=window, manifest=manifest,
                       health=store.health(run_id))
    return store, measured, manifest


# -- metrics -------------------------------------------------------------------
def _metrics_parser(subparsers: Any) -> None:
    parser = _run_parser(subparsers, "metrics", "throughput, latency, errors and loss of a run")
    parser.add_argument("--window", type=_duration, default=1.0, help="window length (1s)")
    parser.set_defaults(handler=_metrics)


_WINDOW_COLUMNS = [("start", "window"), ("sent", "sent"), ("received", "recv"),
                   ("errors", "err"), ("timeouts", "tmo"), ("lost", "lost"),
                   ("duplicates", "dup"), ("out_of_order", "ooo"), ("p50_ms", "p50 ms"),
                   ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("churn", "churn")]  # fmt: skip


def _metrics(args: argparse.Namespace) -> int:
    from streambench.analyze.render import key_values, table

    _, measured, _ = load_run(args, args.run, window=args.window)
    if args.json:
        print_json(measured.to_dict())
        return 0
    print(key_values(measured.run))
    print()
    print(table(measured.schemas.to_dicts(), [("fingerprint", "payload fields"),
                                               ("count", "replies")]))  # fmt: skip
    print()
    windows = measured.windows
    if windows.height > 60:
        print(f"{windows.height} windows of {args.window:g}s (use --json for all of them)")
    else:
        print(table(windows.to_dicts(), _WINDOW_COLUMNS))
    return 0


# -- slo -----------------------------------------------------------------------
def _slo_parser(subparsers: Any) -> None:
    parser = _run_parser(subparsers, "slo", "judge a run against its SLOs (exit 1 on a breach)")
    parser.add_argument("--slo", metavar="FILE", help="SLO file (default: the scenario's slo)")
    parser.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    parser.set_defaults(handler=_slo)


def _slo(args: argparse.Namespace) -> int:
    from streambench.analyze.render import table
    from streambench.analyze.slo import check_slo, load_slo, write_junit

    junit = _output_file(args.junit, "--junit") if args.junit else None
    _, measured, manifest = load_run(args, args.run, gate="judge SLOs")
    slo = load_slo(args.slo) if args.slo else None
    report = check_slo(measured, slo=slo, manifest=manifest)
    if junit:
        try:
            write_junit(report, junit)
        except OSError as exc:
            raise ConfigError(f"--junit {junit}: cannot write ({exc.strerror})") from exc
    if args.json:
        print_json(report.to_dict())
    elif not report.objectives:
        print("no SLOs defined (add an slo block to the scenario or pass --slo FILE)")
    else:
        rows = [o.to_dict() for o in report.objectives]
        print(table(rows, [("name", "objective"), ("target", "target"),
                           ("measured", "measured"), ("verdict", "verdict")]))  # fmt: skip
        print(f"\n{'PASS' if report.passed else 'FAIL'}: run {report.run_id}")
    return 0 if report.passed else 1


def _output_file(path: str, option: str) -> str:
    """``path`` with its folder created; a one-line ConfigError if that is impossible."""
    folder = os.path.dirname(path)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create {folder} ({exc.strerror})") from exc
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path}: is a folder, expected a file name")
    return path


# -- anomalies -----------------------------------------------------------------
def _anomalies_parser(subparsers: Any) -> None:
    from streambench.analyze.types import SEVERITIES

    parser = _run_parser(subparsers, "anomalies", "find anomalies in a run, with suggested fixes")
    parser.add_argument("--rules", metavar="FILE", help="rule file (rules/anomalies.yaml)")
    parser.add_argument("--fixes", metavar="FILE", help="fix catalogue (rules/fixes.yaml)")
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help=f"exit 1 if an anomaly at or above this ({', '.join(SEVERITIES)})",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=5,
        metavar="N",
        help="compare with the last N runs of the scenario (default 5)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not record occurrences in the knowledge base"
    )
    parser.add_argument("--webhook", metavar="URL", help="also post the anomalies to a webhook, "
                        "or mail them: smtp:// or smtps://host?from=...&to=... (credentials "
                        "from STREAMBENCH_SMTP_USER/_PASSWORD)")
    parser.add_argument("--webhook-style", choices=("json", "slack", "teams", "email"),
                        default="json")
    parser.set_defaults(handler=_anomalies)  # fmt: skip


def _anomalies(args: argparse.Namespace) -> int:
    from streambench.analyze.detect import detect_anomalies
    from streambench.analyze.fixes import load_fixes
    from streambench.analyze.kb import KnowledgeBase
    from streambench.analyze.measure import metrics
    from streambench.analyze.rules import load_rules
    from streambench.analyze.source import earlier_runs, scenario_name
    from streambench.analyze.types import severity_rank

    rules, fixes = load_rules(args.rules), load_fixes(args.fixes)
    store, measured, manifest = load_run(args, args.run, gate="find anomalies")
    history = [metrics(store.events(m["run_id"]), manifest=m)
               for m in earlier_runs(store, manifest, last=args.history)]  # fmt: skip
    kb = KnowledgeBase(store.root)
    found = detect_anomalies(measured, rules=rules, faults=store.faults(measured.run_id),
                             history=history, fixes=fixes, knowledge=kb)  # fmt: skip
    if not args.no_record:
        kb.record(found, scenario=scenario_name(manifest))
    if args.webhook:
        from streambench.analyze.notify import post_anomalies

        post_anomalies(args.webhook, found, run_id=measured.run_id, style=args.webhook_style)
    _print_anomalies(found, as_json=args.json)
    if args.fail_on is None:
        return 0
    limit = severity_rank(args.fail_on)
    return 1 if any(severity_rank(a.severity) >= limit for a in found) else 0


def _print_anomalies(found: list[Any], *, as_json: bool) -> None:
    from streambench.analyze.render import table

    if as_json:
        print_json([a.to_dict() for a in found])
        return
    if not found:
        print("no anomalies")
        return
    rows = [{**a.to_dict(), "fix": a.suggestions[0].fix if a.suggestions else None,
             "confidence": a.suggestions[0].confidence if a.suggestions else None}
            for a in found]  # fmt: skip
    print(table(rows, [("severity", "severity"), ("rule", "rule"), ("cause", "blames"),
                       ("start", "start"), ("end", "end"), ("fingerprint", "fingerprint"),
                       ("fix", "top fix"), ("confidence", "conf")]))  # fmt: skip
    for anomaly in found:
        if anomaly.explanation:
            print(f"\n{anomaly.rule} at {anomaly.to_dict()['start']}: {anomaly.explanation}")
    print(f"\n{len(found)} anomalies", file=sys.stdout)


# -- compare -------------------------------------------------------------------
def _compare_parser(subparsers: Any) -> None:
    text = "compare a candidate run with a baseline (exit 1 with --gate on a regression)"
    parser = subparsers.add_parser("compare", help=text, description=text)
    parser.add_argument("baseline", metavar="BASELINE",
                        help="baseline run id or 'latest'; with --last: a scenario name, "
                        "or 'auto' for the candidate's scenario")  # fmt: skip
    parser.add_argument("candidate", metavar="CANDIDATE", help="candidate run id or 'latest'")
    parser.add_argument(
        "--last",
        type=int,
        metavar="N",
        help="baseline = the last N completed runs before the candidate",
    )
    parser.add_argument("--gate", action="store_true", help="exit 1 if any metric regressed")
    parser.add_argument("--force", action="store_true", help="compare different scenarios")
    add_store(parser)
    add_json(parser)
    parser.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from streambench.analyze.compare import compare_runs
    from streambench.analyze.measure import metrics
    from streambench.analyze.render import table
    from streambench.analyze.source import earlier_runs

    store, candidate, manifest = load_run(args, args.candidate, gate="compare")
    if args.last:
        scenario = manifest.get("scenario") if args.baseline == "auto" else {"name": args.baseline}
        pivot = {**manifest, "scenario": scenario}
        baselines = earlier_runs(store, pivot, last=args.last)
        if not baselines:
            raise ConfigError(f"compare: no earlier completed runs of scenario {args.baseline!r}")
        baseline = [metrics(store.events(m["run_id"]), manifest=m) for m in baselines]
    else:
        baseline = [load_run(args, args.baseline, gate="compare")[1]]
    result = compare_runs(baseline, candidate, force=args.force)
    if args.json:
        print_json(result.to_dict())
    else:
        rows = [{**c.to_dict(), "ci": f"[{c.ci_low:.4g}, {c.ci_high:.4g}]"
                 if c.ci_low is not None else "-"} for c in result.changes]  # fmt: skip
        print(table(rows, [("metric", "metric"), ("baseline", "baseline"),
                           ("candidate", "candidate"), ("change", "change"),
                           ("change_pct", "change %"), ("ci", f"{result.confidence:.0%} CI"),
                           ("verdict", "verdict")]))  # fmt: skip
        print(f"\nbaseline: {', '.join(str(r) for r in result.baseline_runs)}; "
              f"candidate: {result.candidate_run}")  # fmt: skip
    return 1 if args.gate and result.regressed else 0
