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
    "BackgroundRun": "streambench.generate.background",
    "ConfigError": "streambench.errors",
    "Progress": "streambench.generate.progress",
    "RunControl": "streambench.generate.runner",
    "RunInterrupted": "streambench.errors",
    "RunNotFound": "streambench.errors",
    "RunResult": "streambench.generate.runner",
    "Scenario": "streambench.scenario.model",
    "ScenarioError": "streambench.errors",
    "Store": "streambench.capture.store",
    "StoreError": "streambench.errors",
    "StreambenchError": "streambench.errors",
    "TargetError": "streambench.errors",
    "TargetUnreachable": "streambench.errors",
    "format_summary": "streambench.analyze.summary",
    "load_scenario": "streambench.scenario.load",
    "open_store": "streambench.api",
    "parse_scenario": "streambench.scenario.load",
    "run": "streambench.api",
    "run_async": "streambench.generate.runner",
    "start_run": "streambench.generate.background",
    "summarize": "streambench.analyze.summary",
    "with_overrides": "streambench.scenario.load",
}

__all__ = [
    "BackgroundRun",
    "ConfigError",
    "Progress",
    "RunControl",
    "RunInterrupted",
    "RunNotFound",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Store",
    "StoreError",
    "StreambenchError",
    "TargetError",
    "TargetUnreachable",
    "__version__",
    "format_summary",
    "load_scenario",
    "open_store",
    "parse_scenario",
    "run",
    "run_async",
    "start_run",
    "summarize",
    "with_overrides",
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
