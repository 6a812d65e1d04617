"""Anomaly rules: the YAML file format, validated into frozen rule objects.

A rule file (``rules/anomalies.yaml``)::

    defaults: {window: 1s, merge_gap: 2s}     # optional, applied to every rule
    rules:
      - id: reply-stall                       # unique, [A-Za-z0-9_.-]
        kind: stall                           # see RULE_KINDS
        severity: critical                    # info | warning | error | critical
        window: 1s                            # window length the rule judges
        merge_gap: 2s                         # hits this close merge into one incident
        fingerprint: "{rule}:{scenario}"      # stable id of the problem, for the KB
        detects: [stall]                      # fault kinds it is meant to catch
        min_silence: 1s                       # ...kind-specific fields

A bad file raises :class:`~streambench.errors.ConfigError` with one line naming
the file, the rule and the field (``rules.yaml: rule 'reply-stall' field
'min_silence': expected a duration such as 500ms, 30s, 5m or 2h``).
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import ErrorDetails

from streambench.analyze.windows import WINDOW_METRICS
from streambench.errors import ConfigError
from streambench.scenario.model import Duration

Severity = Literal["info", "warning", "error", "critical"]
TEMPLATE_FIELDS = frozenset({"rule", "kind", "scenario", "metric", "check", "conn", "error",
                             "fields", "severity", "source", "worker"})  # fmt: skip


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    severity: Severity = "warning"
    window: Duration = Field(default=1.0, gt=0)
    merge_gap: Duration = 0.0
    fingerprint: str = "{rule}:{scenario}"
    detects: tuple[str, ...] = ()
    enabled: bool = True
    description: str = ""

    @field_validator("fingerprint")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        except ValueError as exc:
            raise ValueError(f"bad template ({exc})") from None
        unknown = names - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; "
                             f"use {', '.join(sorted(TEMPLATE_FIELDS))}")  # fmt: skip
        return value


Metric = Literal[WINDOW_METRICS]  # type: ignore[valid-type]
Direction = Literal["up", "down"]


class ThresholdRule(_Rule):
    kind: Literal["threshold"]
    metric: Metric
    op: Literal[">", ">=", "<", "<="]
    value: float
    min_samples: int = Field(default=0, ge=0)  # replies (latency) or sends (rates) per window


class RateOfChangeRule(_Rule):
    kind: Literal["rate_of_change"]
    metric: Metric
    direction: Direction = "up"
    factor: float = Field(default=3.0, gt=1.0)  # value vs median of the previous windows
    lookback: int = Field(default=10, ge=1)
    min_base: float = Field(default=1.0, ge=0)  # ignore baselines smaller than this
    min_delta: float = Field(default=0.0, ge=0)


class StatisticalRule(_Rule):
    kind: Literal["statistical"]
    metric: Metric
    method: Literal["robust_z", "ewma"] = "robust_z"
    baseline: Literal["run", "rolling", "history", "auto"] = "auto"
    direction: Literal["up", "down", "both"] = "up"
    z: float = Field(default=6.0, gt=0)
    lookback: int = Field(default=30, ge=3)  # rolling baseline length, windows
    alpha: float = Field(default=0.1, gt=0, le=1)  # EWMA smoothing
    min_change: float = Field(default=0.5, ge=0)  # relative to the baseline
    min_delta: float = Field(default=0.0, ge=0)  # absolute, in the metric's unit
    min_samples: int = Field(default=0, ge=0)


class SequenceRule(_Rule):
    kind: Literal["sequence"]
    check: Literal["gaps", "duplicates", "reorder", "unsent"]
    min_count: int = Field(default=1, ge=1)


class PushStreamRule(_Rule):
    """Server pushes (see :mod:`streambench.analyze.detect_pushes`)."""

    kind: Literal["push_stream"]
    check: Literal["gap", "staleness", "sequence"]
    min_gap: Duration = Field(default=1.0, gt=0)  # gap: at least this long...
    factor: float = Field(default=10.0, ge=1)  # ...and this many times the stream's median
    limit_ms: float = Field(default=1000.0, gt=0)  # staleness: older than this on arrival
    min_count: int = Field(default=1, ge=1)  # staleness, sequence: per window


class SchemaDriftRule(_Rule):
    kind: Literal["schema_drift"]
    min_count: int = Field(default=1, ge=1)
    expected: tuple[str, ...] = ()  # field sets always accepted, e.g. "cid,seq,text"


class ErrorPatternRule(_Rule):
    kind: Literal["error_pattern"]
    pattern: str
    min_count: int = Field(default=1, ge=1)
    include_timeouts: bool = False

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression ({exc})") from None
        return value


class ConnectionStormRule(_Rule):
    kind: Literal["connection_storm"]
    metric: Literal["churn", "disconnects", "reconnects"] = "churn"
    min_count: int = Field(default=1, ge=1)


class ThroughputDropRule(_Rule):
    kind: Literal["throughput_drop"]
    metric: Literal["throughput_recv", "throughput_sent"] = "throughput_recv"
    drop: float = Field(default=0.5, gt=0, lt=1)  # fraction below the run's median
    min_base: float = Field(default=1.0, ge=0)


class StallRule(_Rule):
    kind: Literal["stall"]
    min_silence: Duration = Field(default=1.0, gt=0)
    factor: float = Field(default=20.0, ge=1)  # x median gap between replies
    min_pending: int = Field(default=3, ge=1)  # sends awaiting a reply during the silence
    scope: Literal["run", "connection"] = "run"


class ScheduleLagRule(_Rule):
    """Client-bound windows (see :mod:`streambench.analyze.generator`); the anomalies
    of the rules in ``explains`` that they explain become this rule's incident."""

    kind: Literal["schedule_lag"]
    limit_ms: float = Field(default=5.0, gt=0)  # schedule lag p99 (or loop stall) at least
    share: float = Field(default=0.5, gt=0, le=1)  # ...and this share of the latency p99
    explains: tuple[str, ...] = ()  # rule ids whose anomalies the generator's lag can explain
    min_explained: int = Field(default=1, ge=0)  # raise an incident only if it explains this many
    alone_ms: float | None = Field(default=None, gt=0)  # ...or if its stall reached this long


class MemoryGrowthRule(_Rule):
    """Steady growth of a process's resident memory (process health rows; see
    :mod:`streambench.analyze.soak`)."""

    kind: Literal["memory_growth"]
    warmup: Duration = Field(default=60.0, ge=0)  # samples before this are not judged
    min_span: Duration = Field(default=300.0, gt=0)  # judge at least this long
    min_growth: float = Field(default=0.10, gt=0)  # relative growth of the fitted line
    min_growth_mb: float = Field(default=16.0, ge=0)  # and absolute, in MiB
    min_fit: float = Field(default=0.85, ge=0, le=1)  # R^2 of the straight line: steady


Rule = Annotated[
    ThresholdRule | RateOfChangeRule | StatisticalRule | SequenceRule | SchemaDriftRule
    | ErrorPatternRule | ConnectionStormRule | ThroughputDropRule | StallRule | ScheduleLagRule
    | MemoryGrowthRule | PushStreamRule,
    Field(discriminator="kind"),
]  # fmt: skip
RULE_KINDS: tuple[str, ...] = (
    "threshold", "rate_of_change", "statistical", "sequence", "schema_drift",
    "error_pattern", "connection_storm", "throughput_drop", "stall", "schedule_lag",
    "memory_growth", "push_stream",
)  # fmt: skip
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Rule)


def _problem(error: ErrorDetails) -> tuple[str, str]:
    loc = [str(p) for p in error["loc"] if not str(p).endswith("Rule") and p not in RULE_KINDS]
    field = ".".join(loc) or "kind"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid" or error["type"] == "union_tag_not_found":
        field, message = "kind", f"expected one of {', '.join(RULE_KINDS)}"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    return field, message


def parse_rules(doc: Any, *, source: str = "<rules>") -> tuple[Any, ...]:
    """Validate a parsed rule document (see the module docstring) into rule objects."""
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'rules' list")
    defaults = doc.get("defaults") or {}
    rules, seen = [], set()
    for index, raw in enumerate(doc["rules"]):
        name = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: rule {name!r}: expected a mapping")
        try:
            rule = _ADAPTER.validate_python({**defaults, **raw})
        except ValidationError as exc:
            field, message = _problem(exc.errors()[0])
            raise ConfigError(f"{source}: rule {name!r} field {field!r}: {message}") from None
        if rule.id in seen:
            raise ConfigError(f"{source}: rule {name!r} field 'id': duplicate rule id")
        seen.add(rule.id)
        rules.append(rule)
    _check_explains(rules, source)
    return tuple(r for r in rules if r.enabled)


def _check_explains(rules: list[Any], source: str) -> None:
    known = {r.id for r in rules}
    for rule in rules:
        for name in getattr(rule, "explains", ()):
            if name not in known or name == rule.id:
                raise ConfigError(f"{source}: rule {rule.id!r} field 'explains': "
                                  f"no other rule {name!r} in this file")  # fmt: skip


def load_rules(path: str | Path | None = None) -> tuple[Any, ...]:
    """Read and validate a rule file; ``None`` means the default ``rules/anomalies.yaml``."""
    path = Path(path) if path is not None else default_rules_path("anomalies.yaml")
    return parse_rules(read_yaml(path, what="rule file"), source=str(path))


def read_yaml(path: Path, *, what: str) -> Any:
    """A YAML file's document; ConfigError naming the file and ``what`` it is if unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def default_rules_path(name: str) -> Path:
    """``./rules/<name>`` if it exists, else the repository's ``rules/<name>``."""
    local = Path("rules") / name
    return local if local.exists() else Path(__file__).resolve().parents[2] / "rules" / name
