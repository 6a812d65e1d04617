"""store_write: events/s the capture writer sustains (no payload), on one core.

Measures the whole capture path a run uses after the hot loop: recorder rows
(tuples) -> Arrow columns (latency computed vectorised) -> Parquet part under
a temporary name -> rename. Baseline in the same run: pyarrow writing the
already-built Arrow table (the floor any writer pays). Goal: >= 1,000,000
events/s.

    python benchmarks/store_write.py [--events 2000000] [--batch 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from streambench.capture.schema import Kind
from streambench.capture.store import Store
from streambench.capture.writer import CaptureWriter, rows_to_table, wall_offset_ns

GOAL = 1_000_000


def make_rows(n: int) -> list[tuple]:
    """Realistic send/recv pairs on 4 connections, 1 ms latency, no payload."""
    start = time.monotonic_ns()
    rows = []
    for i in range(n // 2):
        conn, seq = i % 4, i // 4 + 1
        cid = f"{conn}-{seq}"
        intended = start + i * 25_000
        rows.append((Kind.SEND, intended + 5_000, conn, seq, cid, intended, intended + 5_000, 120,
                     "/echo", None, None, None))
        rows.append((Kind.RECV, intended + 1_000_000, conn, seq, cid, intended,
                     intended + 5_000, 120, "/echo", None, None, None))
    return rows


def bench_writer(rows: list[tuple], batch: int, root: str) -> float:
    writer = CaptureWriter(Store(root), "bench", protocol="websocket", offset_ns=wall_offset_ns(),
                           payloads=False)
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        writer.submit(rows[i:i + batch])
    writer.close()
    return len(rows) / (time.perf_counter() - started)


def bench_baseline(rows: list[tuple], batch: int, root: str) -> float:
    tables = [rows_to_table(rows[i:i + batch], run_id="b", protocol="websocket",
                            offset_ns=wall_offset_ns(), payloads=False)
              for i in range(0, len(rows), batch)]
    started = time.perf_counter()
    for n, table in enumerate(tables):
        pq.write_table(table.drop_columns(["run_id"]), f"{root}/base-{n}.parquet",
                       compression="zstd")
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pa.set_cpu_count(1)  # one core: the writer thread and Arrow's encoders share it
    pa.set_io_thread_count(1)
    rows = make_rows(args.events)
    best_writer = best_base = 0.0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as root:
            best_writer = max(best_writer, bench_writer(rows, args.batch, root))
        with tempfile.TemporaryDirectory() as root:
            best_base = max(best_base, bench_baseline(rows, args.batch, root))
    print(f"store_write: {args.events:,} events, batches of {args.batch:,}, best of {args.runs}")
    print(f"  capture writer (rows -> Arrow -> Parquet part): {best_writer:>12,.0f} events/s")
    print(f"  baseline (pyarrow write of a built table):      {best_base:>12,.0f} events/s")
    print(f"  writer / baseline: {best_writer / best_base:.2f}   "
          f"writer / goal ({GOAL:,}): {best_writer / GOAL:.2f}")


if __name__ == "__main__":
    main()
