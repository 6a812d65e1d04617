"""streambench: a stream testbench for WebSocket, MQTT and HTTP back ends.

The public API, imported lazily (``import streambench`` does no work and has
no side effects; each name loads its module on first use)::

    import streambench as sb
    result = sb.run("scenarios/smoke.yaml")          # blocking; works in Jupyter too
    events = sb.Store("./data").events(result.run_id)  # polars LazyFrame
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it. The notebooks import only these.
_EXPORTS: dict[str, str] = {
    "Anomaly": "streambench.analyze.types",
    "BackgroundRun": "streambench.generate.background",
    "Comparison": "streambench.analyze.compare",
    "ConfigError": "streambench.errors",
    "Dashboard": "streambench.report.dashboard",
    "DetectionScore": "streambench.analyze.score",
    "Fix": "streambench.analyze.fixes",
    "KnowledgeBase": "streambench.analyze.kb",
    "MetricChange": "streambench.analyze.compare",
    "Metrics": "streambench.analyze.measure",
    "Notifier": "streambench.analyze.notify",
    "Objective": "streambench.analyze.slo",
    "Progress": "streambench.generate.progress",
    "RunControl": "streambench.generate.runner",
    "RunInterrupted": "streambench.errors",
    "RunNotFound": "streambench.errors",
    "RunResult": "streambench.generate.runner",
    "SEVERITIES": "streambench.analyze.types",
    "Scenario": "streambench.scenario.model",
    "ScenarioError": "streambench.errors",
    "SloReport": "streambench.analyze.slo",
    "Store": "streambench.capture.store",
    "StoreError": "streambench.errors",
    "StreambenchError": "streambench.errors",
    "Suggestion": "streambench.analyze.types",
    "TargetError": "streambench.errors",
    "TargetUnreachable": "streambench.errors",
    "charts": "streambench.report",
    "check_slo": "streambench.analyze.slo",
    "compare_runs": "streambench.analyze.compare",
    "detect_anomalies": "streambench.analyze.detect",
    "example_history": "streambench.report.examples",
    "example_runs": "streambench.report.examples",
    "example_scenario": "streambench.report.examples",
    "example_store": "streambench.report.examples",
    "format_summary": "streambench.analyze.summary",
    "history": "streambench.report",
    "load_fixes": "streambench.analyze.fixes",
    "load_rules": "streambench.analyze.rules",
    "load_scenario": "streambench.scenario.load",
    "load_slo": "streambench.analyze.slo",
    "metrics": "streambench.analyze.measure",
    "open_store": "streambench.api",
    "parse_rules": "streambench.analyze.rules",
    "parse_scenario": "streambench.scenario.load",
    "render_nightly": "streambench.report.nightly",
    "render_report": "streambench.report.execute",
    "run": "streambench.api",
    "run_async": "streambench.generate.runner",
    "score_detections": "streambench.analyze.score",
    "start_run": "streambench.generate.background",
    "suggest_fixes": "streambench.analyze.fixes",
    "summarize": "streambench.analyze.summary",
    "tables": "streambench.report",
    "with_overrides": "streambench.scenario.load",
    "write_junit": "streambench.analyze.slo",
}

__all__ = [
    "SEVERITIES",
    "Anomaly",
    "BackgroundRun",
    "Comparison",
    "ConfigError",
    "Dashboard",
    "DetectionScore",
    "Fix",
    "KnowledgeBase",
    "MetricChange",
    "Metrics",
    "Notifier",
    "Objective",
    "Progress",
    "RunControl",
    "RunInterrupted",
    "RunNotFound",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "SloReport",
    "Store",
    "StoreError",
    "StreambenchError",
    "Suggestion",
    "TargetError",
    "TargetUnreachable",
    "__version__",
    "charts",
    "check_slo",
    "compare_runs",
    "detect_anomalies",
    "example_history",
    "example_runs",
    "example_scenario",
    "example_store",
    "format_summary",
    "history",
    "load_fixes",
    "load_rules",
    "load_scenario",
    "load_slo",
    "metrics",
    "open_store",
    "parse_rules",
    "parse_scenario",
    "render_nightly",
    "render_report",
    "run",
    "run_async",
    "score_detections",
    "start_run",
    "suggest_fixes",
    "summarize",
    "tables",
    "with_overrides",
    "write_junit",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streambench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
