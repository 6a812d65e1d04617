"""Process health rows: buffered, then written as parts of the run's ``health`` table.

One row per process per sample interval, with the schema
:data:`~streambench.capture.schema.HEALTH_SCHEMA` (what each column means:
docs/analysis.md#process-health-rows). The sampler
(:mod:`streambench.generate.engine.health`) adds rows from its own thread;
they are written ``rows_per_part`` at a time (and on :meth:`HealthWriter.close`),
so a day-long run adds a part a minute per process, not a part a second; a
crash loses at most that minute of samples, never an event.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from streambench.capture.schema import HEALTH_SCHEMA
from streambench.capture.store import Store
from streambench.capture.writer import PartWriter

ROWS_PER_PART = 60
_COLUMNS = HEALTH_SCHEMA.remove(HEALTH_SCHEMA.get_field_index("run_id"))


def health_table(rows: Sequence[dict[str, Any]], *, run_id: str) -> pa.Table:
    """HEALTH_SCHEMA rows from dicts (``ts`` in epoch ns; missing keys are null)."""
    n = len(rows)
    columns: dict[str, Any] = {"run_id": pa.repeat(run_id, n).cast(pa.string())}
    for field in _COLUMNS:
        values = [row.get(field.name) for row in rows]
        if field.name == "ts":
            columns["ts"] = pa.array(values, pa.int64()).cast(field.type)
        else:
            columns[field.name] = pa.array(values, field.type)
    return pa.table(columns, schema=HEALTH_SCHEMA)


class HealthWriter:
    """Collects health rows from any thread; writes them as parts, a batch at a time."""

    def __init__(self, store: Store, run_id: str, *, first_part: int = 0,
                 rows_per_part: int = ROWS_PER_PART) -> None:
        self.run_id = run_id
        self.rows_per_part = rows_per_part
        self.parts = PartWriter(store, "health", run_id, first_part=first_part)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.rows_per_part
        if full:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one part (nothing when empty)."""
        with self._lock:
            rows, self._rows = self._rows, []
            if rows:
                self.parts.write(health_table(rows, run_id=self.run_id))

    def close(self) -> None:
        self.flush()
