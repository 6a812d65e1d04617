"""streambench.analyze: metrics, SLO gates, anomaly rules, the knowledge base,
fix suggestions, webhook alerts and regression comparison.

Every public name is importable from here (lazily: importing the package does
no work, so the run engine's ``streambench.analyze.summary`` stays cheap)::

    from streambench.analyze import metrics, check_slo, detect_anomalies
    m = metrics(store.events(run_id), manifest=store.manifest(run_id))

See docs/analysis.md for the whole surface with examples.
"""

from __future__ import annotations

from streambench._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Anomaly": "streambench.analyze.types",
    "Comparison": "streambench.analyze.compare",
    "DetectionScore": "streambench.analyze.score",
    "Fix": "streambench.analyze.fixes",
    "KnowledgeBase": "streambench.analyze.kb",
    "MetricChange": "streambench.analyze.compare",
    "Metrics": "streambench.analyze.measure",
    "Notifier": "streambench.analyze.notify",
    "Objective": "streambench.analyze.slo",
    "SEVERITIES": "streambench.analyze.types",
    "SloReport": "streambench.analyze.slo",
    "Suggestion": "streambench.analyze.types",
    "check_slo": "streambench.analyze.slo",
    "compare_runs": "streambench.analyze.compare",
    "detect_anomalies": "streambench.analyze.detect",
    "load_fixes": "streambench.analyze.fixes",
    "load_rules": "streambench.analyze.rules",
    "load_slo": "streambench.analyze.slo",
    "metrics": "streambench.analyze.measure",
    "parse_rules": "streambench.analyze.rules",
    "score_detections": "streambench.analyze.score",
    "suggest_fixes": "streambench.analyze.fixes",
    "write_junit": "streambench.analyze.slo",
}

__all__ = [
    "SEVERITIES",
    "Anomaly",
    "Comparison",
    "DetectionScore",
    "Fix",
    "KnowledgeBase",
    "MetricChange",
    "Metrics",
    "Notifier",
    "Objective",
    "SloReport",
    "Suggestion",
    "check_slo",
    "compare_runs",
    "detect_anomalies",
    "load_fixes",
    "load_rules",
    "load_slo",
    "metrics",
    "parse_rules",
    "score_detections",
    "suggest_fixes",
    "write_junit",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
