"""Render the CLI reference (docs/cli.md) from the parser itself, so it cannot drift.

    python -m streambench.cli_doc > docs/cli.md

A test checks that docs/cli.md is exactly what this prints.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

INTRO = """\
# CLI reference

`streambench COMMAND [options]`. Generated from the parser by
`python -m streambench.cli_doc > docs/cli.md` (a test keeps it in sync).

Conventions every command follows:

- **Store**: `--store URL` (a path or any fsspec URL), else `$STREAMBENCH_STORE`,
  else `./data`.
- **Machines**: commands that answer a question take `--json` and print one JSON
  document on stdout; human output and progress go to stderr/stdout as text.
- **Exit codes**: `0` success; `1` a gate failed (`slo` breach, `compare --gate`
  regression, `anomalies --fail-on`, an invalid file for `validate`, a run that did
  not complete); `2` bad input or an error, printed as one line
  `streambench: error: ...`; `130` interrupted (Ctrl-C / SIGTERM: what was captured
  is kept and the run is marked aborted).
- **Run ids**: wherever a RUN is expected, `latest` (and `latest:<scenario>`) work.
- **Logs**: `streambench --log-format json --log-level info COMMAND ...` gives JSON
  lines on stderr carrying `run_id`, `conn`, `cid` where they apply.

Examples that run on a fresh checkout:

```console
$ streambench keys init
$ streambench validate scenarios/smoke.yaml
$ streambench run scenarios/smoke.yaml --duration 3s --json
$ streambench slo latest --junit slo.xml
$ streambench anomalies latest --json
$ streambench report latest --out reports
```
"""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, Any]]:
    for action in parser._actions:  # argparse has no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            return [(name, (sub, helps.get(name))) for name, sub in action.choices.items()]
    return []


def render() -> str:
    from streambench.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "96"  # argparse wraps to the terminal; fix it for a stable file
    try:
        return _render(build_parser())
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _render(parser: argparse.ArgumentParser) -> str:
    parts = [INTRO]
    parts.append("## Global options\n\n```text\n" + parser.format_help().strip() + "\n```\n")
    for name, (sub, summary) in _subcommands(parser):
        parts.append(f"## `streambench {name}`\n\n{summary or ''}\n\n```text\n"
                     + sub.format_help().strip() + "\n```\n")
        for action_name, (action, action_help) in _subcommands(sub):
            parts.append(f"### `streambench {name} {action_name}`\n\n{action_help or ''}\n\n"
                         "```text\n" + action.format_help().strip() + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
