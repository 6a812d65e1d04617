"""SLO gates: objectives from the scenario's ``slo`` block (or a file), judged
against a run's metrics, each with its target, the measured value and a verdict.

Run-level objectives (the scenario model's ``Slo``): ``p50_ms`` ``p90_ms``
``p95_ms`` ``p99_ms`` ``max_ms`` (latency from the intended send, at most),
``error_rate`` (at most; counts error replies *and* lost replies per message
sent, since a reply that never came is a failure too) and ``min_throughput``
(received messages/s, at least).

Windowed objectives, ``windows:`` in the same block, say "p95 under 50 ms in
99% of 10 s windows"::

    slo:
      p99_ms: 250
      error_rate: 0.001
      windows:
        - {p95_ms: 50, window: 10s, quantile: 0.99}

Only windows fully inside the sending period count; a window whose messages
got no reply at all fails a latency objective. A verdict is ``pass``,
``fail`` or ``no-data`` (nothing was sent); the report passes only if every
objective passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streambench.analyze.measure import Metrics
from streambench.analyze.rules import read_yaml
from streambench.errors import ConfigError
from streambench.scenario.model import LATENCY_OBJECTIVES as LATENCY
from streambench.scenario.model import Slo, WindowObjective


@dataclass(frozen=True)
class Objective:
    """One judged objective; ``measured`` is None when there was nothing to measure."""

    name: str
    target: str
    limit: float
    measured: float | None
    verdict: str  # pass | fail | no-data
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "limit": self.limit,
            "measured": self.measured,
            "verdict": self.verdict,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SloReport:
    run_id: str | None
    objectives: tuple[Objective, ...]

    @property
    def passed(self) -> bool:
        return all(o.verdict == "pass" for o in self.objectives)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "passed": self.passed,
                "objectives": [o.to_dict() for o in self.objectives]}  # fmt: skip


def parse_slo(raw: Mapping[str, Any] | Slo | None, *, source: str = "slo") -> Slo:
    """Validate an SLO block (as in a scenario's ``slo:``) with the scenario's own model."""
    if isinstance(raw, Slo):
        return raw
    try:
        return Slo.model_validate(dict(raw or {}))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if cause is not None else error["msg"]
        raise ConfigError(f"{source}: field {field.lstrip('.')!r}: {message}") from None


def load_slo(path: str | Path) -> Slo:
    """Read SLOs from a YAML file: either an ``slo:`` block or its fields at top level."""
    path = Path(path)
    doc = read_yaml(path, what="SLO file") or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of objectives")
    return parse_slo(doc.get("slo", doc), source=str(path))


def _run_objectives(run: Slo, numbers: dict[str, Any]) -> list[Objective]:
    nothing_sent = not numbers.get("sent")
    found = []
    for name in LATENCY:
        limit = getattr(run, name)
        if limit is not None:
            found.append(_judge(name, f"<= {limit:g} ms", limit, numbers.get(name), nothing_sent))
    if run.error_rate is not None:
        sent = max(numbers.get("sent") or 0, 1)
        failed = (numbers.get("errors") or 0) + (numbers.get("lost") or 0)
        found.append(_judge("error_rate", f"<= {run.error_rate:g}", run.error_rate,
                            failed / sent, nothing_sent))  # fmt: skip
    if run.min_throughput is not None:
        measured = numbers.get("throughput_recv")
        if nothing_sent or measured is None:
            verdict = "no-data"
        else:
            verdict = "pass" if measured >= run.min_throughput else "fail"
        found.append(Objective("min_throughput", f">= {run.min_throughput:g} msg/s",
                               run.min_throughput, measured, verdict))  # fmt: skip
    return found


def _judge(name: str, target: str, limit: float, measured: Any, nothing: bool) -> Objective:
    if nothing:
        return Objective(name, target, limit, None, "no-data", "nothing was sent")
    if measured is None:
        return Objective(name, target, limit, None, "fail", "no replies at all")
    return Objective(name, target, limit, measured, "pass" if measured <= limit else "fail")


def _window_objective(metrics: Metrics, objective: WindowObjective) -> Objective:
    table = metrics.windows_for(objective.window)
    table = table.filter(table["active"] & (table["sent"] > 0))
    name = f"{objective.metric} in {objective.quantile:.4g} of {objective.window:g}s windows"
    unit = " ms" if objective.metric in LATENCY else ""
    target = f"<= {objective.limit:g}{unit} in >= {objective.quantile:.2%} of windows"
    if table.height == 0:
        return Objective(name, target, objective.limit, None, "no-data", "no full windows")
    if objective.metric == "error_rate":
        values = (table["errors"] + table["lost"]) / table["sent"]
    else:
        values = table[objective.metric]
    good = int((values.fill_null(float("inf")) <= objective.limit).sum())
    share = good / table.height
    verdict = "pass" if share >= objective.quantile else "fail"
    return Objective(name, target, objective.limit, share, verdict,
                     f"{good} of {table.height} windows within the limit")  # fmt: skip


def check_slo(
    metrics: Metrics,
    *,
    slo: Mapping[str, Any] | Slo | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> SloReport:
    """Judge ``metrics`` against ``slo`` (a block, a parsed :func:`load_slo` result,
    or None for the ``scenario.slo`` of ``manifest``)."""
    if slo is None:
        scenario = (manifest or {}).get("scenario")
        slo = scenario.get("slo") if isinstance(scenario, Mapping) else None
    parsed = parse_slo(slo)
    objectives = _run_objectives(parsed, metrics.run)
    objectives += [_window_objective(metrics, w) for w in parsed.windows]
    return SloReport(run_id=metrics.run_id, objectives=tuple(objectives))


def write_junit(report: SloReport, path: str | Path) -> None:
    """Write the report as JUnit XML: one test case per objective, failures for breaches."""
    from xml.etree import ElementTree as ET

    failed = [o for o in report.objectives if o.verdict != "pass"]
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="slo", tests=str(len(report.objectives)),
                          failures=str(len(failed)), errors="0", skipped="0")  # fmt: skip
    for objective in report.objectives:
        case = ET.SubElement(suite, "testcase", classname=f"slo.{report.run_id or 'run'}",
                             name=f"{objective.name} {objective.target}")  # fmt: skip
        if objective.verdict != "pass":
            measured = "nothing" if objective.measured is None else f"{objective.measured:g}"
            message = f"{objective.verdict}: measured {measured}, target {objective.target}"
            ET.SubElement(case, "failure", message=message, type=objective.verdict).text = (
                objective.detail or message
            )
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
