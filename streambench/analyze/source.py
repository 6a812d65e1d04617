"""Where analysis gets runs from: the capture store, by run id or ``latest``.

Uses :class:`streambench.capture.store.Store` when it exists; until then (and for
plain directories written by other tools) a minimal reader of the documented
layout: ``<root>/events/date=*/run_id=<id>/*.parquet``, the same under
``faults/``, and ``<root>/runs/<id>.json``. Analysis functions themselves take
LazyFrames and manifest dicts, so nothing else depends on this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from streambench.capture.schema import FAULT_SCHEMA
from streambench.errors import RunNotFound, StoreError


class RunSource(Protocol):
    def events(self, run_id: str) -> pl.LazyFrame: ...
    def faults(self, run_id: str) -> pl.LazyFrame: ...
    def manifest(self, run_id: str) -> dict[str, Any]: ...
    def runs(self) -> list[dict[str, Any]]: ...


class LayoutReader:
    """Reads a local store directory by its documented layout (no writing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _parts(self, table: str, run_id: str) -> list[Path]:
        return sorted((self.root / table).glob(f"date=*/run_id={run_id}/*.parquet"))

    def events(self, run_id: str) -> pl.LazyFrame:
        parts = self._parts("events", run_id)
        if not parts:
            raise RunNotFound(str(self.root), run_id)
        return pl.scan_parquet(parts, hive_partitioning=False)

    def faults(self, run_id: str) -> pl.LazyFrame:
        parts = self._parts("faults", run_id)
        if not parts:
            return pl.from_arrow(FAULT_SCHEMA.empty_table()).lazy()  # type: ignore[union-attr]
        return pl.scan_parquet(parts, hive_partitioning=False)

    def manifest(self, run_id: str) -> dict[str, Any]:
        path = self.root / "runs" / f"{run_id}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunNotFound(str(self.root), run_id) from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable manifest ({exc})") from exc

    def runs(self) -> list[dict[str, Any]]:
        folder = self.root / "runs"
        return [self.manifest(p.stem) for p in sorted(folder.glob("*.json"))]


def open_store(root: str) -> RunSource:
    """The capture store's ``Store(root)`` if present, else :class:`LayoutReader`."""
    try:
        from streambench.capture.store import Store  # type: ignore[import-not-found]
    except ImportError:
        return LayoutReader(root)
    return Store(root)


def _started(manifest: dict[str, Any]) -> str:
    return str(manifest.get("started") or "")


def resolve_run(source: RunSource, run: str, *, root: str) -> str:
    """A run id, or the id of the most recently started run for ``latest``."""
    if run != "latest":
        return run
    runs = source.runs()
    if not runs:
        raise RunNotFound(root, "latest")
    return max(runs, key=_started)["run_id"]


def scenario_name(manifest: dict[str, Any]) -> str | None:
    """The scenario name recorded in a manifest (``scenario.name``), if any."""
    scenario = manifest.get("scenario")
    if isinstance(scenario, dict):
        return scenario.get("name")
    return scenario if isinstance(scenario, str) else None


def earlier_runs(
    source: RunSource, manifest: dict[str, Any], *, last: int
) -> list[dict[str, Any]]:
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
