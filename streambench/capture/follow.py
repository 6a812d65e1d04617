"""Following a run as it is written: each row once, whatever compaction does meanwhile.

A reader that polls a running run (the live dashboard) wants only the rows
written since its last poll. It cannot go by file names: compaction replaces
parts it has read by a merged file it has not. A merged file says which
original parts it holds and how many rows each (merge.py,
``streambench.sources``), so :class:`Follower` tracks *original parts*: from a
merged file it reads only the rows of parts it had not seen.
"""

from __future__ import annotations

import os
from typing import Any, cast

import polars as pl
import pyarrow.parquet as pq

from streambench.capture.merge import sources_of


class Follower:
    """Reads the rows of one table of one run that were not read before."""

    def __init__(self, store: Any, run_id: str, *, table: str = "events") -> None:
        self.store = store
        self.run_id = run_id
        self.table = table
        self._files: set[str] = set()  # files fully accounted for
        self._parts: set[str] = set()  # original parts (folder/name) already read

    @property
    def parts_read(self) -> int:
        return len(self._parts)

    def read_new(self) -> pl.DataFrame | None:
        """Rows written since the last call (None if there are none)."""
        frames = []
        for path in self.store.parts(self.table, self.run_id):
            if path in self._files:
                continue
            frame = self._read_unseen(path)
            if frame is not None and frame.height:
                frames.append(frame)
        if not frames:
            return None
        return pl.concat(frames, how="diagonal_relaxed")

    def _read_unseen(self, path: str) -> pl.DataFrame | None:
        folder, name = os.path.split(path)
        try:
            with self.store.fs.open(path, "rb") as f:
                parquet = pq.ParquetFile(f)
                leaves = sources_of(parquet.metadata, name)
                wanted = self._wanted(folder, leaves)
                table = parquet.read() if wanted else None
        except FileNotFoundError:
            return None  # compacted away since listed: the next poll reads its successor
        self._files.add(path)
        self._parts.update(f"{folder}/{leaf}" for leaf, _ in leaves)
        if table is None:
            return None
        frame = cast(pl.DataFrame, pl.from_arrow(table))
        if len(wanted) == len(leaves):
            return frame
        return pl.concat([frame.slice(start, rows) for start, rows in wanted])

    def _wanted(self, folder: str, leaves: list[list[Any]]) -> list[tuple[int, int]]:
        """(first row, rows) of each original part in the file not read yet."""
        wanted, start = [], 0
        for leaf, rows in leaves:
            if f"{folder}/{leaf}" not in self._parts:
                wanted.append((start, int(rows)))
            start += int(rows)
        return wanted
