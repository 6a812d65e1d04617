"""Attribution: latency anomalies the load generator's own lag explains blame the client.

A ``schedule_lag`` rule (the default ``generator-stall``) finds the
client-bound windows of a run (:mod:`streambench.analyze.generator`) and
merges them into incidents. Then every anomaly of a rule it ``explains``
(latency, stall and throughput rules) that lies at least half inside
client-bound windows is taken over: it leaves the list, and the incident records it
(``evidence.explains``) and says in words that the load generator stalled. So
a busy client machine raises one ``generator-stall`` warning with client-side
fixes instead of a critical "reply-stall" blamed on the server. An incident
that explains fewer than ``min_explained`` anomalies is dropped (the run
summary still warns about the lag), unless the generator stalled there for at
least ``alone_ms``: a stall that long distorts every figure of its windows
whether or not a latency rule fired, so it is raised on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from streambench.analyze.generator import generator_windows
from streambench.analyze.hits import Context, Hit, strength
from streambench.analyze.types import Anomaly

_PEAKS = ("lag_p99_ms", "lag_max_ms", "p99_ms", "loop_stall_ms", "client_cpu")


def schedule_lag(rule: Any, ctx: Context) -> list[Hit]:
    """One hit per client-bound window of ``rule.window``."""
    length = int(rule.window * 1e9)
    origin = ctx.metrics.origin(length)
    table = generator_windows(ctx.metrics.windows_for(rule.window), ctx.metrics.health,
                              length_ns=length, origin=origin, limit_ms=rule.limit_ms,
                              share=rule.share)  # fmt: skip
    hits = []
    for row in table.filter("client_bound").iter_rows(named=True):
        start = origin + row["w"] * length
        stall = max(v for v in (row["lag_p99_ms"], row["loop_stall_ms"]) if v is not None)
        peaks = {k: round(row[k], 3) for k in _PEAKS if row[k] is not None}
        hits.append(Hit(start, start + length, strength(stall, rule.limit_ms),
                        counts={"sent": float(row["sent"])}, peaks=peaks,
                        limits={"limit_ms": rule.limit_ms, "share": rule.share}))  # fmt: skip
    return hits


def _overlap(span: tuple[int, int], start: int, end: int) -> int:
    return max(0, min(span[1], end) - max(span[0], start))


def fold(found: Sequence[Anomaly], rule: Any, incidents: Sequence[Anomaly],
         windows: Sequence[tuple[int, int]]) -> list[Anomaly]:
    """``found`` with the anomalies ``incidents`` explain replaced by those incidents.

    An anomaly is explained when at least half of where it happened (its own
    hits, ``spans``) lies in client-bound ``windows`` (the rule's hits,
    ``(start, end)`` epoch ns), not in the gaps either incident merged across: a
    fault between two stalls, or two faults around one, stay the target's. It
    joins the incident that holds most of it."""
    explained: dict[int, list[Anomaly]] = {i: [] for i in range(len(incidents))}
    kept = []
    for anomaly in found:
        spans = anomaly.spans or ((anomaly.start, anomaly.end),)
        bound = sum(_overlap(span, start, end) for span in spans for start, end in windows)
        inside = bound >= 0.5 * max(sum(end - start for start, end in spans), 1)
        overlaps = [sum(_overlap(span, i.start, i.end) for span in spans) for i in incidents]
        best = max(range(len(incidents)), key=overlaps.__getitem__, default=None)
        if anomaly.rule in rule.explains and best is not None and inside:
            explained[best].append(anomaly)
        else:
            kept.append(anomaly)
    for index, incident in enumerate(incidents):
        if len(explained[index]) >= rule.min_explained or _stalled_alone(incident, rule):
            kept.append(_blame_generator(incident, explained[index]))
    return kept


def _stalled_alone(incident: Anomaly, rule: Any) -> bool:
    if rule.alone_ms is None:
        return False
    stalls = [incident.evidence.get(k) for k in ("lag_p99_ms", "loop_stall_ms")]
    return max((float(v) for v in stalls if v is not None), default=0.0) >= float(rule.alone_ms)


def _blame_generator(incident: Anomaly, explained: list[Anomaly]) -> Anomaly:
    rules = sorted({a.rule for a in explained})
    evidence = {**incident.evidence, "explains": rules}
    lag, worst = evidence.get("lag_p99_ms"), evidence.get("lag_max_ms")
    text = (f"the load generator stalled: its schedule lag (p99 up to {lag} ms, max {worst} ms)"
            " explains the latency here, so these windows measured the client, not the target")
    if "loop_stall_ms" in evidence:
        text += f"; its event loop stalled for up to {evidence['loop_stall_ms']} ms"
    if rules:
        text += f"; it explains {', '.join(rules)}"
    return replace(incident, evidence=evidence, cause="generator", explanation=text)
