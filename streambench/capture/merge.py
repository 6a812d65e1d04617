"""Merging small Parquet files into one large file (the data side of compaction).

:func:`plan_groups` picks which files of a partition to merge: every file
smaller than half the target size, in name order, cut into groups whose
total stays under the target; a group of one is left alone. So small parts
keep being merged, a merged file keeps growing until it is large, and a
large file is never rewritten again: a day-long run holds few files and
rewrites each byte a bounded number of times.

:func:`write_merged` streams the sources into one file with row groups of
:data:`ROW_GROUP_ROWS` rows (memory: about one row group). The file's
key-value metadata ``streambench.sources`` lists the original parts it holds,
in row order, as ``[[name, rows], ...]``: a reader that follows a run as it
is written (the live dashboard) uses it to skip rows it has already read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TARGET_BYTES = 128 * 1024 * 1024
ROW_GROUP_ROWS = 262_144
SOURCES_KEY = b"streambench.sources"


@dataclass(frozen=True)
class Fingerprint:
    """What a file is now; a file that changed since it was planned is not replaced."""

    size: int
    version: Any  # (inode, mtime_ns) locally, the ETag or mtime on an object store


@dataclass(frozen=True)
class Merged:
    name: str
    sources: tuple[str, ...]
    rows: int
    bytes: int


def plan_groups(sizes: dict[str, int], *, target_bytes: int = TARGET_BYTES) -> list[list[str]]:
    """Groups of file names to merge (see the module docstring)."""
    groups: list[list[str]] = [[]]
    total = 0
    for name in sorted(n for n, size in sizes.items() if size < target_bytes // 2):
        if groups[-1] and total + sizes[name] > target_bytes:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += sizes[name]
    return [g for g in groups if len(g) >= 2]


def sources_of(metadata: pq.FileMetaData, name: str) -> list[list[Any]]:
    """The original parts a file holds, in row order: itself unless it was merged."""
    kv = metadata.metadata or {}
    if SOURCES_KEY in kv:
        return [list(item) for item in json.loads(kv[SOURCES_KEY])]
    return [[name, metadata.num_rows]]


@dataclass(frozen=True)
class Leaf:
    """One part as the writer wrote it, wherever it lives now (itself or a merged file)."""

    name: str  # the part's own name, e.g. part-100003.parquet
    rows: int
    file: str  # the file holding its rows now
    share: float  # its fraction of that file's rows (for attributing bytes)


def leaves(store: Any, table: str, run_id: str) -> list[Leaf]:
    """Every original part of a run's table, read from the files' lineage, not names.

    A file merged away between listing and reading makes it list again: the
    answer is always one consistent view.
    """
    for _ in range(10):
        try:
            return _leaves(store, table, run_id)
        except FileNotFoundError:
            continue  # a compaction swapped the partition meanwhile
    return _leaves(store, table, run_id)


def _leaves(store: Any, table: str, run_id: str) -> list[Leaf]:
    found = []
    for path in store.parts(table, run_id):
        with store.fs.open(path, "rb") as f:
            metadata = pq.ParquetFile(f).metadata
        total = max(metadata.num_rows, 1)
        for name, rows in sources_of(metadata, path.rsplit("/", 1)[-1]):
            found.append(Leaf(name=str(name), rows=int(rows), file=path, share=rows / total))
    return found


def write_merged(store: Any, folder: str, sources: list[str], destination: str) -> Merged:
    """Stream ``sources`` (names in ``folder``) into the new file ``destination``."""
    metas = []
    for name in sources:
        with store.fs.open(f"{folder}/{name}", "rb") as f:
            metas.append(pq.ParquetFile(f).metadata)
    schema = pa.unify_schemas([m.schema.to_arrow_schema() for m in metas],
                              promote_options="permissive")
    leaves = [leaf for m, name in zip(metas, sources, strict=True)
              for leaf in sources_of(m, name)]
    schema = schema.with_metadata({SOURCES_KEY: json.dumps(leaves).encode()})
    rows = 0
    with (store.files.atomic(destination) as out,
          pq.ParquetWriter(out, schema, compression="zstd") as writer):
        for table in _row_groups(store, folder, sources, schema):
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
    expected = sum(m.num_rows for m in metas)
    if rows != expected:  # never publish a file that lost rows
        store.files.remove(destination)
        raise RuntimeError(f"merging {folder}: wrote {rows} rows, sources hold {expected}")
    return Merged(name=destination.rsplit("/", 1)[-1], sources=tuple(sources), rows=rows,
                  bytes=int(store.fs.size(destination)))


def _row_groups(store: Any, folder: str, sources: list[str],
                schema: pa.Schema) -> Iterator[pa.Table]:
    """Tables of ROW_GROUP_ROWS rows (the last one shorter), conformed to ``schema``."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for name in sources:
        with store.fs.open(f"{folder}/{name}", "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536):
                pending.append(_conform(batch, schema))
                count += batch.num_rows
                if count >= ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(pending, schema=schema)
                    yield table.slice(0, ROW_GROUP_ROWS)
                    rest = table.slice(ROW_GROUP_ROWS)
                    pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending, schema=schema)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns in order (missing ones null)."""
    columns = [batch.column(f.name).cast(f.type) if f.name in batch.schema.names
               else pa.nulls(batch.num_rows, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
