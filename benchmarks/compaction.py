"""What compaction costs and what it saves readers.

    python benchmarks/compaction.py [--minutes 5] [--rate 2000]

Writes the parts a run at ``--rate`` messages/s leaves in ``--minutes``
(one part per second, as the capture writer does, each with the sends and
replies of that second and ~120-byte payloads), then times, in the same run:

* baseline: a typical query through ``Store.events()`` (count, and p99 latency
  by connection) over the small parts;
* compaction: ``compact_run`` of the partition (files before/after, seconds,
  rows/s);
* the same query over the compacted file.

Prints the figures and the query's speed-up (baseline time / compacted time).
Generated data goes to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime

# Run from a checkout without installing: the repository root holds the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from streambench.capture.compact import compact_run
from streambench.capture.schema import EVENT_SCHEMA
from streambench.capture.store import Store


def one_second(second: int, rate: int, rng: np.random.Generator) -> pa.Table:
    """The sends and replies of one second of a run (no ``run_id``: it is in the path)."""
    n = 2 * rate
    start = int(datetime(2026, 11, 3, tzinfo=UTC).timestamp() * 1e9) + second * 10**9
    ts = start + np.sort(rng.integers(0, 10**9, n))
    kind = np.where(np.arange(n) % 2 == 0, "send", "recv")
    seq = second * rate + np.arange(n) // 2
    latency = np.where(kind == "recv", rng.gamma(2.0, 2.0, n), np.nan)
    columns = {
        "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ns", "UTC")),
        "kind": kind, "protocol": ["websocket"] * n, "conn": (seq % 200).astype("int32"),
        "seq": seq, "cid": [f"{s % 200}-{s}" for s in seq], "intended_ns": ts,
        "latency_ms": pa.array(latency, pa.float64(), mask=np.isnan(latency)),
        "service_ms": pa.array(latency, pa.float64(), mask=np.isnan(latency)),
        "bytes": np.full(n, 120, "int32"), "topic": ["/echo"] * n,
        "payload": [f'{{"cid":"{s % 200}-{s}","text":"lorem ipsum dolor sit amet {s}",'
                    f'"value":{s % 97}}}' for s in seq],
    }
    fields = [f for f in EVENT_SCHEMA if f.name != "run_id"]
    return pa.table({f.name: pa.array(columns[f.name], f.type) if f.name in columns
                     else pa.nulls(n, f.type) for f in fields}, schema=pa.schema(fields))


def query(store: Store) -> tuple[float, int]:
    started = time.perf_counter()
    events = store.events("bench")
    count = events.select(pl.len()).collect().item()
    events.filter(pl.col("kind") == "recv").group_by("conn").agg(
        pl.col("latency_ms").quantile(0.99)).collect()
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=2000)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="streambench-compaction-")
    try:
        store = Store(root)
        store.write_manifest({"run_id": "bench", "status": "completed"})
        rng = np.random.default_rng(7)
        folder = store.partition_dir("events", "2026-11-03", "bench")
        store.files.makedirs(folder)
        seconds = int(args.minutes * 60)
        for second in range(seconds):
            with store.files.atomic(f"{folder}/part-{second:05d}.parquet") as f:
                pq.write_table(one_second(second, args.rate, rng), f, compression="zstd")
        before_s, rows = query(store)
        started = time.perf_counter()
        report = compact_run(store, "bench")
        compact_s = time.perf_counter() - started
        after_s, rows_after = query(store)
        assert rows_after == rows, (rows, rows_after)
        print(f"{seconds} parts, {rows:,} rows ({args.minutes:g} min at {args.rate} msg/s)")
        print(f"compaction: {report.files_before} files -> {report.files_after} in "
              f"{compact_s:.2f} s ({rows / compact_s:,.0f} rows/s)")
        print(f"query over parts: {before_s * 1000:.0f} ms; over the compacted file: "
              f"{after_s * 1000:.0f} ms; speed-up {before_s / after_s:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
