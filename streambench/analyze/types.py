"""The value objects analysis hands back: anomalies, suggestions, severities.

Times inside the analysis are integer epoch nanoseconds (UTC); they become ISO 8601
strings only at the edge (:meth:`Anomaly.to_dict`), so arithmetic never meets a
time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
"""Severities from least to most urgent; ``--fail-on`` compares by this order."""


def severity_rank(severity: str) -> int:
    """Position of ``severity`` in :data:`SEVERITIES` (ValueError if unknown)."""
    return SEVERITIES.index(severity)


def iso(ns: int) -> str:
    """Epoch nanoseconds -> ISO 8601 UTC with microseconds, e.g. ``2024-01-01T00:00:01.5Z``."""
    text = datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_time_ns(value: object) -> int:
    """ISO 8601 string, datetime or epoch ns -> epoch ns (naive datetimes are UTC)."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise TypeError(f"expected a time, got {value!r}")


@dataclass(frozen=True)
class Suggestion:
    """One fix proposed for an anomaly, with how sure we are and why."""

    fix: str  # fix id in rules/fixes.yaml
    confidence: float  # 0..1 = prior x evidence strength x past feedback (capped at 1)
    why: str
    title: str = ""
    steps: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "fix": self.fix,
            "confidence": round(self.confidence, 3),
            "why": self.why,
            "title": self.title,
            "steps": list(self.steps),
        }


@dataclass(frozen=True)
class Anomaly:
    """One incident: a rule that fired over one contiguous stretch of a run.

    ``start``/``end`` (epoch ns) say when the problem *happened*: events that
    concern a message (replies, errors, timeouts, losses) are placed at the
    message's intended send time, so a lost reply belongs to the moment it was
    sent, not to the moment its timeout fired. ``evidence`` holds the numbers
    that fired the rule; ``strength`` (0..1] says how far past the rule's limit
    they were and feeds the confidence of fix suggestions. ``cause`` says whom
    it blames: ``target`` (the system under test, the default) or
    ``generator`` (the load generator fell behind its own schedule, so the
    measurements of that stretch are the client's; see
    :mod:`streambench.analyze.generator`); ``explanation`` says why in words.
    """

    rule: str
    kind: str
    severity: str
    start: int
    end: int
    fingerprint: str
    evidence: dict[str, Any]
    strength: float = 1.0
    run_id: str | None = None
    detects: tuple[str, ...] = ()  # fault kinds this rule is meant to catch (for scoring)
    injected: tuple[str, ...] = ()  # ground-truth fault kinds overlapping this anomaly
    suggestions: tuple[Suggestion, ...] = field(default=())
    cause: str = "target"  # target | generator
    explanation: str = ""
    # where its hits lay, (start, end) epoch ns: an incident merges hits across gaps
    # (``merge_gap``). Kept in memory only: a stored anomaly has just start and end.
    spans: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / 1e9

    def with_suggestions(self, suggestions: tuple[Suggestion, ...]) -> Anomaly:
        return replace(self, suggestions=suggestions)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``streambench anomalies --json``."""
        return {
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "start": iso(self.start),
            "end": iso(self.end),
            "fingerprint": self.fingerprint,
            "evidence": self.evidence,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "run_id": self.run_id,
            "strength": round(self.strength, 3),
            "detects": list(self.detects),
            "injected": list(self.injected),
            "cause": self.cause,
            "explanation": self.explanation,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Anomaly:
        """Inverse of :meth:`to_dict` (suggestions are kept as plain fields)."""
        return cls(
            rule=doc["rule"],
            kind=doc["kind"],
            severity=doc["severity"],
            start=parse_time_ns(doc["start"]),
            end=parse_time_ns(doc["end"]),
            fingerprint=doc["fingerprint"],
            evidence=dict(doc.get("evidence") or {}),
            strength=float(doc.get("strength", 1.0)),
            run_id=doc.get("run_id"),
            detects=tuple(doc.get("detects") or ()),
            injected=tuple(doc.get("injected") or ()),
            cause=doc.get("cause") or "target",
            explanation=doc.get("explanation") or "",
            suggestions=tuple(
                Suggestion(
                    fix=s["fix"],
                    confidence=float(s["confidence"]),
                    why=s.get("why", ""),
                    title=s.get("title", ""),
                    steps=tuple(s.get("steps") or ()),
                )
                for s in doc.get("suggestions") or ()
            ),
        )
