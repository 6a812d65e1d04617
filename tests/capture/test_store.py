"""The store: layout, atomic parts, manifests, reading back with polars."""

from __future__ import annotations

import os
import socket
import time

import polars as pl
import pyarrow.parquet as pq
import pytest

from streambench.capture.schema import EVENT_SCHEMA, Kind
from streambench.capture.store import Store
from streambench.capture.writer import CaptureWriter, Recorder, rows_to_table, wall_offset_ns
from streambench.errors import RunNotFound


def recv_row(seq: int, latency_ns: int = 2_000_000) -> tuple:
    now = time.monotonic_ns()
    return (Kind.RECV, now, 0, seq, f"0-{seq}", now - latency_ns, now - latency_ns // 2, 10,
            "/echo", None, None, f'{{"cid":"0-{seq}"}}')


def test_rows_become_the_event_schema_with_latency_from_intended_send():
    rows = [recv_row(1, 2_000_000), (Kind.CONNECT, time.monotonic_ns(), 0, None, None, None,
                                     None, None, "/echo", "open", None, None)]
    table = rows_to_table(rows, run_id="r1", protocol="websocket", offset_ns=wall_offset_ns())
    assert table.schema == EVENT_SCHEMA
    assert table.column("kind").to_pylist() == ["recv", "connect"]
    assert table.column("latency_ms").to_pylist() == [pytest.approx(2.0), None]
    assert table.column("service_ms").to_pylist() == [pytest.approx(1.0), None]
    ts = table.column("ts").cast("int64").to_pylist()[0]
    assert abs(ts - time.time_ns()) < 1e9  # monotonic turned into wall-clock UTC


def test_writer_lays_out_hive_partitions_and_the_store_reads_them(store: Store):
    writer = CaptureWriter(store, "run-a", protocol="websocket", offset_ns=wall_offset_ns())
    recorder = Recorder()
    for seq in range(1, 1001):
        recorder.append(recv_row(seq))
        if seq % 400 == 0:
            writer.submit(recorder.take())
    writer.submit(recorder.take())
    writer.close()
    store.write_manifest({"run_id": "run-a", "status": "completed", "started": "x",
                          "scenario": {"name": "s"}})
    parts = store.parts("events", "run-a")
    assert len(parts) == 3
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert all(f"/events/date={today}/run_id=run-a/part-" in p for p in parts)
    df = store.events("run-a").collect()
    assert df.height == 1000
    assert df["seq"].sort().to_list() == list(range(1, 1001))
    # any engine reads the same files: pyarrow's dataset with hive partitioning
    ds = pq.ParquetDataset(os.path.join(store.path, "events"), partitioning="hive")
    assert ds.read().num_rows == 1000


def test_a_temporary_part_left_by_a_crash_is_invisible(store: Store):
    writer = CaptureWriter(store, "run-b", protocol="websocket", offset_ns=wall_offset_ns())
    writer.submit([recv_row(1)])
    writer.close()
    directory = os.path.dirname(store.parts("events", "run-b")[0])
    with open(os.path.join(directory, ".part-00001.parquet.tmp"), "wb") as f:
        f.write(b"PAR1 half a file")
    store.write_manifest({"run_id": "run-b", "status": "completed"})
    assert store.events("run-b").collect().height == 1


def test_latest_and_missing_runs(store: Store):
    for i, run_id in enumerate(["r-old", "r-new"]):
        store.write_manifest({"run_id": run_id, "status": "completed",
                              "started": f"2026-01-0{i + 1}", "scenario": {"name": "s"}})
    assert store.resolve_run("latest") == "r-new"
    assert store.resolve_run("latest:s") == "r-new"
    assert store.events("r-new").collect().height == 0  # a run with no events reads empty
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        store.events("nope")
    with pytest.raises(RunNotFound):
        store.resolve_run("latest:other")


def test_a_running_manifest_whose_process_is_gone_reads_as_aborted(store: Store):
    store.write_manifest({"run_id": "r", "status": "running", "host": socket.gethostname(),
                          "pid": 2**22 + 12345})  # above pid_max's default: never alive
    assert store.manifest("r")["status"] == "aborted"
    assert store.manifest("r")["stale"] is True


def test_scan_of_every_run_is_lazy_polars(store: Store):
    writer = CaptureWriter(store, "x", protocol="websocket", offset_ns=wall_offset_ns())
    writer.submit([recv_row(1), recv_row(2)])
    writer.close()
    events = store.events()
    assert isinstance(events, pl.LazyFrame)
    assert events.select(pl.len()).collect().item() == 2
