"""``streambench validate FILE [FILE...] [--json]``: check scenarios without running them.

Exit status: 0 when every file is valid, 1 when any is not. Problems are
printed one per line as ``file:line: path: message``. Warnings (a secret whose
environment variable is not set here, a redaction rule naming no body field)
are printed but do not fail validation: the run machine may have the secret.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from streambench import cli_common
from streambench.errors import Problem, ScenarioError
from streambench.scenario import secrets
from streambench.scenario.load import load_scenario
from streambench.scenario.model import Scenario


def register(subparsers: Any) -> None:
    """Add the ``validate`` sub-command to the ``streambench`` parser."""
    parser = subparsers.add_parser(
        "validate",
        help="check scenario files and summarise them (no load is sent)",
        description="Check scenario files: every problem is listed with its line. "
        "Exit 0 when all are valid, 1 otherwise.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML files")
    cli_common.add_json(parser)
    parser.set_defaults(handler=validate)


def validate(args: argparse.Namespace) -> int:
    """Handler of ``streambench validate``; returns the exit status."""
    results = [check_file(file, env=os.environ) for file in args.files]
    if args.json:
        cli_common.print_json(results)
    else:
        for result in results:
            _print_text(result)
    return 0 if all(result["valid"] for result in results) else 1


def check_file(file: str, *, env: Any) -> dict[str, Any]:
    """Validate one file: ``{file, valid, problems, warnings, summary}`` (JSON-able)."""
    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        problems = [{"path": p.path, "line": p.line, "message": p.message} for p in exc.problems]
        return {"file": file, "valid": False, "problems": problems, "warnings": [],
                "summary": None}
    warnings = [{"path": w.path, "line": w.line, "message": w.message}
                for w in warnings_for(scenario, env=env)]
    return {"file": file, "valid": True, "problems": [], "warnings": warnings,
            "summary": summary(scenario)}


def warnings_for(scenario: Scenario, *, env: Any) -> list[Problem]:
    """What may go wrong at run time although the file is valid."""
    found = [
        Problem(path, f"environment variable {name} is not set (needed at run time)")
        for path, name in secrets.missing(scenario, env=env)
    ]
    pushes = scenario.target.protocol == "sse" or scenario.stream != type(scenario.stream)()
    if pushes or scenario.preset is not None or \
            "replies" in scenario.model_dump(exclude_defaults=True):
        return found  # replies and pushes have fields of their own: allow may name those
    known: set[str | None] = set()
    for kind in scenario.kinds():
        known |= _body_paths(kind.body) | {kind.cid_field, kind.seq_field}
    redaction = scenario.capture.redaction
    for rule, names in (("allow", redaction.allow), ("hash", redaction.hash)):
        for index, name in enumerate(names):
            if name.replace("[]", "") not in known and not any(c in name for c in "*?"):
                found.append(Problem(f"capture.redaction.{rule}[{index}]",
                                     f"{name!r} is not a field of message.body"))
    return found


def summary(scenario: Scenario) -> dict[str, Any]:
    """Facts about the load a scenario describes, with a one-line ``text``."""
    load = scenario.load
    stages = load.profile()
    peak = max(max(s.rate, s.rate if s.to is None else s.to) for s in stages)
    messages = round(sum(s.duration * (s.rate + (s.rate if s.to is None else s.to)) / 2
                         for s in stages))
    url = secrets.public_url(scenario.target.url)
    duration = format_duration(load.total_duration)
    if load.stages is None:
        shape = f"{_number(peak)} msg/s for {duration}"
    else:
        shape = f"{len(stages)} stages up to {_number(peak)} msg/s over {duration}"
    plural = "" if load.connections == 1 else "s"
    text = (f"{scenario.name}: {scenario.target.protocol} -> {url}, "
            f"{load.connections} connection{plural}, {shape}, {messages} messages")
    if scenario.target.protocol == "sse":  # nothing is sent: it listens
        messages = 0
        text = (f"{scenario.name}: sse -> {url}, {load.connections} stream{plural} "
                f"listened to for {duration}")
    return {"name": scenario.name, "protocol": scenario.target.protocol, "url": url,
            "connections": load.connections, "stages": len(stages), "peak_rate": peak,
            "duration_s": load.total_duration, "messages": messages, "text": text}


def format_duration(seconds: float) -> str:
    """``10`` -> ``10s``, ``0.5`` -> ``500ms``, ``5400`` -> ``1h30m``, ``90`` -> ``1m30s``."""
    if seconds < 1:
        return f"{_number(round(seconds * 1000, 3))}ms"
    if not float(seconds).is_integer() or seconds < 60:
        return f"{_number(round(seconds, 3))}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _body_paths(body: Any, prefix: str = "") -> set[str]:
    """Dotted paths into the body; lists are walked through, as the redactor does."""
    paths: set[str] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            path = f"{prefix}{key}"
            paths |= {path} | _body_paths(value, f"{path}.")
    elif isinstance(body, list):
        for item in body:
            paths |= _body_paths(item, prefix)
    return paths


def _print_text(result: dict[str, Any]) -> None:
    file = result["file"]
    if result["valid"]:
        print(f"ok  {file}  ({result['summary']['text']})")
    for problem in result["problems"]:
        print(Problem(problem["path"], problem["message"], problem["line"]).render(file))
    for warning in result["warnings"]:
        print(f"warning  {Problem(warning['path'], warning['message']).render(file)}")
