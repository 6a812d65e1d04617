"""``streambench report`` and ``streambench nightly``: notebooks rendered to offline HTML."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streambench.cli_common import add_store


def register(sub: Any) -> None:
    _register_report(sub)
    _register_nightly(sub)


def _register_report(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="render a run's report (a notebook) to HTML",
        description="Execute a report notebook for RUN with papermill and render it to one "
        "self-contained HTML file (code hidden unless --show-code; no network needed to view).",
    )  # fmt: skip
    p.add_argument("run", metavar="RUN", help="run id, or 'latest' / 'latest:<scenario>'")
    p.add_argument("--notebook", default="scenario_report", metavar="NAME",
                   help="scenario_report (default), anomaly_study, regression_compare, nightly, "
                   "or a path to an .ipynb")  # fmt: skip
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (./reports)")
    p.add_argument("--show-code", action="store_true", help="keep the code cells in the HTML")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra notebook parameter (value read as YAML: 3, true, a string); "
                   "e.g. -p baseline=<run id> for regression_compare")  # fmt: skip
    add_store(p)
    p.set_defaults(handler=_report)


def _register_nightly(sub: Any) -> None:
    from streambench.scenario.model import parse_duration

    p: argparse.ArgumentParser = sub.add_parser(
        "nightly", help="render the reports of the last night's runs, with an index page",
        description="Render the scenario report of every run started within --since, the "
        "nightly overview, and an index.html linking them, into one folder.",
    )  # fmt: skip
    p.add_argument("--since", type=parse_duration, default=86_400.0, metavar="DURATION",
                   help="how far back to look, e.g. 12h (default 24h)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: ./reports/nightly/<UTC date>)")
    p.add_argument("--show-code", action="store_true", help="keep the code cells in the HTML")
    add_store(p)
    p.set_defaults(handler=_nightly)


def _log(line: str) -> None:
    print(f"streambench: {line}", file=sys.stderr, flush=True)


def _report(args: argparse.Namespace) -> int:
    from streambench.api import open_store
    from streambench.report.execute import render_report

    params = _params(args.param)
    store = open_store(args.store)
    run_id = store.resolve_run(args.run)
    # a missing, unfinished or empty run is one clear line, before a kernel starts
    store.judged_manifest(run_id, doing="render a report")
    path = render_report(run_id, notebook=args.notebook, out=args.out, store=store.root,
                         parameters=params, show_code=args.show_code, log=_log)
    print(path)
    return 0


def _nightly(args: argparse.Namespace) -> int:
    from streambench.report.nightly import nightly_folder, render_nightly

    out = args.out or nightly_folder("reports/nightly")
    result = render_nightly(out=out, store=args.store, since_s=args.since,
                            show_code=args.show_code, log=_log)  # fmt: skip
    print(result.index)
    return 1 if result.failed else 0


def _params(pairs: list[str]) -> dict[str, Any]:
    import yaml

    from streambench.errors import ConfigError

    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE with NAME a Python name")
        try:
            params[name] = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            params[name] = value
    return params
