"""Where the CLI gets runs from: the capture store, by run id or ``latest``.

Analysis functions themselves take LazyFrames and manifest dicts; only the
commands and the history look-up (earlier runs of a scenario) read a store.
"""

from __future__ import annotations

from typing import Any, Protocol

import polars as pl


class RunSource(Protocol):
    """What analysis needs from a store (``streambench.Store`` provides it)."""

    def events(self, run_id: str) -> pl.LazyFrame: ...
    def faults(self, run_id: str) -> pl.LazyFrame: ...
    def manifest(self, run_id: str) -> dict[str, Any]: ...
    def runs(self) -> list[dict[str, Any]]: ...
    def resolve_run(self, run_id: str) -> str: ...


def _started(manifest: dict[str, Any]) -> str:
    return str(manifest.get("started") or "")


def scenario_name(manifest: dict[str, Any]) -> str | None:
    """The scenario name recorded in a manifest (``scenario.name``), if any."""
    scenario = manifest.get("scenario")
    if isinstance(scenario, dict):
        return scenario.get("name")
    return scenario if isinstance(scenario, str) else None


def earlier_runs(source: RunSource, manifest: dict[str, Any], *, last: int) -> list[dict[str, Any]]:
    """Up to ``last`` completed runs of the same scenario started before ``manifest``'s."""
    name = scenario_name(manifest)
    before = [
        m
        for m in source.runs()
        if scenario_name(m) == name
        and m.get("run_id") != manifest.get("run_id")
        and m.get("status", "completed") == "completed"
        and _started(m) < _started(manifest)
    ]
    return sorted(before, key=_started)[-last:] if last > 0 else []
