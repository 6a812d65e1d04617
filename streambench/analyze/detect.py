"""Anomaly detection: run every rule over a run, merge hits into incidents,
mark injected faults, attach fix suggestions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import polars as pl

from streambench.analyze import attribute, detect_events, detect_pushes, detect_windows, soak
from streambench.analyze.hits import Context, Hit, merge_hits
from streambench.analyze.measure import Metrics, metrics
from streambench.analyze.rules import load_rules
from streambench.analyze.types import Anomaly

DETECTORS: dict[str, Callable[[Any, Context], list[Hit]]] = {
    "threshold": detect_windows.threshold,
    "rate_of_change": detect_windows.rate_of_change,
    "statistical": detect_windows.statistical,
    "sequence": detect_windows.sequence,
    "connection_storm": detect_windows.connection_storm,
    "throughput_drop": detect_windows.throughput_drop,
    "stall": detect_events.stall,
    "error_pattern": detect_events.error_pattern,
    "schema_drift": detect_events.schema_drift,
    "schedule_lag": attribute.schedule_lag,
    "memory_growth": soak.memory_growth,
    "push_stream": detect_pushes.push_stream,
}


def _fault_spans(faults: pl.LazyFrame | pl.DataFrame | None) -> list[tuple[int, int, str]]:
    if faults is None:
        return []
    frame = faults.collect() if isinstance(faults, pl.LazyFrame) else faults
    if frame.height == 0:
        return []
    spans = frame.select(
        pl.col("start").dt.epoch("ns"), pl.col("end").dt.epoch("ns"), pl.col("kind")
    )
    return [tuple(row) for row in spans.iter_rows()]


def _mark_injected(anomaly: Anomaly, spans: list[tuple[int, int, str]]) -> Anomaly:
    kinds = sorted({k for s, e, k in spans if s < anomaly.end and anomaly.start < e})
    return replace(anomaly, injected=tuple(kinds)) if kinds else anomaly


def detect_anomalies(
    events: pl.LazyFrame | Metrics,
    *,
    rules: Sequence[Any] | None = None,
    faults: pl.LazyFrame | pl.DataFrame | None = None,
    history: Sequence[Metrics] | None = None,
    manifest: dict[str, Any] | None = None,
    fixes: Sequence[Any] | None = None,
    knowledge: Any | None = None,
) -> list[Anomaly]:
    """Anomalies of one run, sorted by start time.

    ``events`` is the run's event LazyFrame, or its already computed
    :class:`Metrics` (cheaper: the events are then not read again). ``rules``
    come from :func:`load_rules` (default: ``rules/anomalies.yaml``).
    ``history`` holds the metrics of earlier runs of the same scenario, for
    statistical rules with ``baseline: history|auto`` and for schema drift
    (field sets seen before are expected). ``faults`` (the run's ground truth,
    FAULT_SCHEMA) only annotates each anomaly's ``injected`` kinds. Rules of
    kind ``schedule_lag`` run last: the anomalies the load generator's own lag
    explains become their incidents (:mod:`streambench.analyze.attribute`).
    ``fixes`` (from :func:`load_fixes`; default ``rules/fixes.yaml``, ``()`` for
    none) and ``knowledge`` (a :class:`KnowledgeBase`) produce the suggestions.
    """
    run = events if isinstance(events, Metrics) else metrics(events, manifest=manifest)
    rules = load_rules() if rules is None else rules
    ctx = Context(metrics=run, history=tuple(history or ()), scenario=run.scenario or "unknown")
    found: list[Anomaly] = []
    for rule in (r for r in rules if r.kind != "schedule_lag"):
        hits = DETECTORS[rule.kind](rule, ctx)
        found += merge_hits(rule, hits, scenario=ctx.scenario, run_id=run.run_id)
    for rule in (r for r in rules if r.kind == "schedule_lag"):  # they judge the others
        hits = DETECTORS[rule.kind](rule, ctx)
        incidents = merge_hits(rule, hits, scenario=ctx.scenario, run_id=run.run_id)
        found = attribute.fold(found, rule, incidents, [(h.start, h.end) for h in hits])
    spans = _fault_spans(faults)
    found = [_mark_injected(a, spans) for a in found]
    found.sort(key=lambda a: (a.start, a.rule))
    return _suggest(found, fixes, knowledge)


def _suggest(found: list[Anomaly], fixes: Sequence[Any] | None, knowledge: Any) -> list[Anomaly]:
    from streambench.analyze.fixes import load_fixes, suggest_fixes

    if fixes is None:
        fixes = load_fixes()
    if not fixes:
        return found
    return [a.with_suggestions(suggest_fixes(a, fixes=fixes, knowledge=knowledge)) for a in found]
