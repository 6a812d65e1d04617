"""What a detector reports (a :class:`Hit`) and how hits become incidents.

A detector judges one rule and returns hits: stretches of time where the rule
fired, with the numbers that fired it. :func:`merge_hits` turns the hits of one
rule into incidents: hits with the same fingerprint whose gap is at most the
rule's ``merge_gap`` become one :class:`~streambench.analyze.types.Anomaly`, so
one stall pages once, not once per window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from streambench.analyze.types import Anomaly

if TYPE_CHECKING:
    from streambench.analyze.measure import Metrics


@dataclass(frozen=True)
class Hit:
    """One stretch ``[start, end)`` (epoch ns) where a rule fired.

    ``counts`` are summed when hits merge (events seen), ``peaks`` keep their
    maximum (the worst value), ``limits`` are the rule's constants; ``labels``
    fill the fingerprint template (``conn``, ``error``, ``fields``...).
    """

    start: int
    end: int
    strength: float
    counts: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What detectors may read: this run's metrics and earlier runs of its scenario."""

    metrics: Metrics
    history: Sequence[Metrics] = ()
    scenario: str = "unknown"


def strength(value: float, limit: float) -> float:
    """0.5 at the limit, rising with the log of value/limit to 1.0 at ten times it."""
    if limit <= 0 or value <= 0:
        return 1.0 if value > limit else 0.5
    return min(1.0, max(0.5, 0.5 + 0.5 * math.log10(value / limit)))


def window_hits(
    table: pl.DataFrame,
    fired: pl.Expr,
    *,
    window_ns: int,
    t0: int,
    value: str,
    limit: float,
    counts: Sequence[str] = (),
    ratio: pl.Expr | None = None,
    limits: dict[str, Any] | None = None,
) -> list[Hit]:
    """Hits for the windows of ``table`` where ``fired`` holds.

    ``value`` names the column reported as the peak; ``ratio`` (default
    value/limit) feeds :func:`strength`; ``counts`` name columns summed on merge.
    """
    ratio = ratio if ratio is not None else pl.col(value) / limit if limit else pl.lit(1.0)
    rows = table.filter(fired.fill_null(False)).with_columns(_ratio=ratio)
    hits = []
    for row in rows.iter_rows(named=True):
        start = t0 + row["w"] * window_ns
        hits.append(Hit(
            start=start,
            end=start + window_ns,
            strength=strength(float(row["_ratio"] or 1.0), 1.0),
            counts={c: float(row[c]) for c in counts},
            peaks={value: _round(row[value])},
            limits={"limit": limit, **(limits or {})},
        ))  # fmt: skip
    return hits


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def _render(template: str, values: dict[str, Any]) -> str:
    return template.format_map({k: ("" if v is None else v) for k, v in values.items()})


def merge_hits(
    rule: Any, hits: Iterable[Hit], *, scenario: str, run_id: str | None
) -> list[Anomaly]:
    """Incidents of one rule: same-fingerprint hits within ``rule.merge_gap`` merged."""
    base = {"rule": rule.id, "kind": rule.kind, "scenario": scenario, "severity": rule.severity,
            "metric": getattr(rule, "metric", ""), "check": getattr(rule, "check", ""),
            "conn": "", "error": "", "fields": "", "source": "", "worker": ""}  # fmt: skip
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(_render(rule.fingerprint, {**base, **hit.labels}), []).append(hit)
    gap = int(rule.merge_gap * 1e9)
    incidents = []
    for fingerprint, group in groups.items():
        group.sort(key=lambda h: h.start)
        run: list[Hit] = [group[0]]
        for hit in group[1:]:
            if hit.start - max(h.end for h in run) <= gap:
                run.append(hit)
            else:
                incidents.append(_incident(rule, run, fingerprint, run_id))
                run = [hit]
        incidents.append(_incident(rule, run, fingerprint, run_id))
    return incidents


def _incident(rule: Any, hits: list[Hit], fingerprint: str, run_id: str | None) -> Anomaly:
    evidence: dict[str, Any] = dict(hits[0].limits)
    for hit in hits:
        for key, value in hit.counts.items():
            evidence[key] = evidence.get(key, 0) + value
        for key, value in hit.peaks.items():
            if value is not None:
                evidence[key] = max(evidence.get(key, value), value)
    labels = {k: v for k, v in hits[0].labels.items() if v not in (None, "")}
    evidence.update(labels)
    evidence["windows"] = len(hits)
    return Anomaly(
        rule=rule.id,
        kind=rule.kind,
        severity=rule.severity,
        start=min(h.start for h in hits),
        end=max(h.end for h in hits),
        fingerprint=fingerprint,
        evidence={k: _round(v) for k, v in evidence.items()},
        strength=max(h.strength for h in hits),
        run_id=run_id,
        detects=tuple(rule.detects),
        spans=tuple((h.start, h.end) for h in hits),
    )
