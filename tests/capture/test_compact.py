"""Compaction (issue 13 item 1): few large files, atomically; safe under readers, writers,
kill -9, and on S3."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from streambench.capture.audit import read_entries
from streambench.capture.compact import compact_run
from streambench.capture.compaction import PeriodicCompaction, compact_audited
from streambench.capture.follow import Follower
from streambench.capture.merge import ROW_GROUP_ROWS, SOURCES_KEY
from streambench.capture.store import Store
from tests.capture.storetools import BUCKET, finished, kill_9_at, write_part
from tests.helpers import wait_for


def many_parts(store: Store, run_id: str, parts: int, *, rows: int = 100,
               day: str = "2026-11-02", first: int = 0) -> int:
    """``parts`` parts of ``rows`` rows, seq numbered from ``first``; rows written."""
    for i in range(parts):
        start = first + i * rows
        write_part(store, run_id, range(start, start + rows), day=day)
    return parts * rows


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "events").rglob("*.parquet") if not p.name.startswith("."))


def test_parts_become_one_file_with_large_row_groups_and_their_lineage(store: Store):
    finished(store, "r")
    total = many_parts(store, "r", 40, rows=10_000) + many_parts(store, "r", 3, day="2026-11-03",
                                                                   first=10**6)
    report = compact_run(store, "r")
    assert report.files_before == 43
    assert report.files_after == 2  # one per partition
    files = data_files(Path(store.path))
    metadata = pq.read_metadata(files[0])
    assert metadata.num_rows == 400_000
    assert metadata.row_group(0).num_rows == ROW_GROUP_ROWS
    lineage = json.loads(metadata.metadata[SOURCES_KEY])
    assert lineage[0] == ["part-000000.parquet", 10_000]
    assert len(lineage) == 40
    events = store.events("r").collect()
    assert events.height == total
    assert events["seq"].n_unique() == total
    assert ds.dataset(Path(store.path) / "events", partitioning="hive").count_rows() == total
    assert not any((Path(store.path) / ".compaction").iterdir())
    assert compact_run(store, "r").partitions == []  # nothing small left: nothing to do


def test_no_reader_ever_sees_a_torn_view_while_a_writer_and_compaction_work(store: Store):
    """Readers through the store, pyarrow given the store's file list, and a polars glob
    of the Hive layout (what an external engine does) must see no row twice and never lose
    a row: a read that races a swap fails and is retried, never a wrong answer.

    Not pyarrow's (or DuckDB's) own discovery of the directory: it skips a file that
    vanishes between its listing and its stat, so a scan overlapping a swap can silently
    miss the old parts (docs/operations.md says so and what to do instead)."""
    finished(store, "r", status="running", host="elsewhere", pid=1)
    root = Path(store.path)
    stop = threading.Event()
    written = {"rows": 0}
    problems: list[str] = []
    reads: dict[str, int] = {}
    retries: dict[str, int] = {}

    write_part(store, "r", range(50))  # readers start on a table that exists
    written["rows"] = 50

    def writer() -> None:
        for i in range(1, 150):
            write_part(store, "r", range(i * 50, (i + 1) * 50))
            written["rows"] += 50
            time.sleep(0.005)  # a steady trickle of parts, like a run's flushes
        stop.set()

    def compactor() -> None:
        while not stop.is_set():
            compact_run(store, "r")

    readers = {
        "store": lambda: store.events("r").select("seq").collect(),
        "pyarrow": lambda: pl.from_arrow(ds.dataset(store.parts("events", "r"))
                                         .to_table(columns=["seq"])),
        "polars glob": lambda: pl.scan_parquet(str(root / "events" / "**" / "*.parquet"),
                                               hive_partitioning=True).select("seq").collect(),
    }

    def reader(name: str, read: Any) -> None:
        seen = 0
        while not stop.is_set() or reads.get(name, 0) < 5:
            floor = written["rows"] - 50  # rows surely on disk before this read began
            try:
                frame = read()
            except (FileNotFoundError, OSError, pl.exceptions.ComputeError):
                retries[name] = retries.get(name, 0) + 1
                continue  # listed before a swap, opened after: re-read (never a wrong answer)
            count, unique = frame.height, frame["seq"].n_unique()
            if count != unique:
                problems.append(f"{name}: {count - unique} rows seen twice")
            if count < max(seen, floor):  # rows vanished: "neither" for a moment
                problems.append(f"{name}: saw {count} rows after {max(seen, floor)}")
            seen = count
            reads[name] = reads.get(name, 0) + 1

    threads = [threading.Thread(target=writer), threading.Thread(target=compactor)] + [
        threading.Thread(target=reader, args=item) for item in readers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert problems == []
    assert all(reads.get(name, 0) >= 5 for name in readers), reads
    assert sum(retries.values()) < sum(reads.values()), (reads, retries)
    compact_run(store, "r")
    assert store.events("r").collect()["seq"].sort().to_list() == list(range(150 * 50))
    assert len(data_files(root)) == 1


BLOCKER = """
import sys, threading
from pathlib import Path
from streambench.capture.compact import compact_run
from streambench.capture.store import Store

def at(step):
    if step == sys.argv[3]:
        Path(sys.argv[4]).write_text(step)
        threading.Event().wait()  # held here until killed

compact_run(Store(sys.argv[1]), sys.argv[2], on_step=at)
"""


@pytest.mark.parametrize("step", ["merged", "swapped"])
def test_kill_9_during_compaction_loses_nothing(store: Store, tmp_path: Path, step: str):
    finished(store, "r")
    total = many_parts(store, "r", 30)
    marker = tmp_path / "reached"
    kill_9_at(BLOCKER, store, "r", step, marker)

    def exact() -> None:
        seqs = store.events("r").collect()["seq"]
        assert seqs.len() == seqs.n_unique() == total
        table = ds.dataset(Path(store.path) / "events", partitioning="hive").to_table()
        assert table.num_rows == total

    exact()  # whatever the step, every row once
    debris = list((Path(store.path) / ".compaction").iterdir())
    assert debris  # the staged (or old) directory is still there...
    compact_run(store, "r")  # ...until the next compaction clears it
    exact()
    assert not any((Path(store.path) / ".compaction").iterdir())
    assert len(data_files(Path(store.path))) == 1


def test_compaction_on_s3_switches_atomically_for_store_readers(aws_env: dict[str, str]):
    store = Store(f"s3://{BUCKET}/compact")
    finished(store, "r")
    total = many_parts(store, "r", 12)
    seen: dict[str, tuple[int, int, int]] = {}

    def at(step: str) -> None:
        seqs = Store(store.root).events("r").collect()["seq"]
        seen[step] = (seqs.len(), seqs.n_unique(), len(store.parts("events", "r")))

    report = compact_run(store, "r", on_step=at)
    assert seen["committed"] == (total, total, 12)  # record written: still the old parts
    assert seen["merged"] == (total, total, 1)  # new file complete: the old ones hidden
    assert report.files_after == 1
    assert store.events("r").select(pl.len()).collect().item() == total
    assert store.list_dir(".compaction") == []


@pytest.mark.parametrize(("step", "objects"), [("committed", 6), ("merged", 7)])
def test_a_crash_on_s3_is_finished_by_the_next_compaction(aws_env: dict[str, str], step: str,
                                                          objects: int):
    """Stopped after the record (no merged file yet: rolled back) or after the upload
    (sources not yet deleted: finished); readers see every row once meanwhile."""
    store = Store(f"s3://{BUCKET}/crash")
    finished(store, "r")
    total = many_parts(store, "r", 6)

    def die(at: str) -> None:
        if at == step:
            raise KeyboardInterrupt  # the process stops here: nothing cleaned up

    with pytest.raises(KeyboardInterrupt):
        compact_run(store, "r", on_step=die)
    assert len(store.fs.ls(store.join("events", "date=2026-11-02", "run_id=r"))) == objects
    seqs = Store(store.root).events("r").collect()["seq"]  # a fresh reader, as another host
    assert seqs.len() == seqs.n_unique() == total  # the record hides one side
    # kill -9 would also leave the lease (the exception above let it go): one whose
    # process is gone from this host is taken over
    dead = subprocess.Popen(["true"])
    dead.wait()
    lease = {"host": socket.gethostname(), "pid": dead.pid,
             "at": datetime.now(UTC).isoformat()}
    store.fs.pipe_file(store.join(".compaction", "r.lease"), json.dumps(lease).encode())
    compact_run(store, "r")
    assert len(store.parts("events", "r")) == 1
    assert store.events("r").select(pl.len()).collect().item() == total
    assert store.list_dir(".compaction") == []  # record and lease gone


def test_a_long_run_compacts_as_it_goes(store: Store):
    finished(store, "r", status="running", host="elsewhere", pid=1)
    with PeriodicCompaction(store.root, "r", every_s=0.3):
        for i in range(120):
            write_part(store, "r", range(i * 10, (i + 1) * 10))
            time.sleep(0.02)
        wait_for(lambda: [e for e in read_entries(store) if e["command"] == "compact"],
                 timeout=30, what="a periodic compaction")
    assert len(data_files(Path(store.path))) < 60
    assert store.events("r").collect()["seq"].sort().to_list() == list(range(1200))
    entries = [e for e in read_entries(store) if e["command"] == "compact"]
    assert {e["arguments"]["trigger"] for e in entries} == {"periodic"}


def test_the_live_reader_reads_each_row_once_across_compactions(store: Store):
    finished(store, "r", status="running", host="elsewhere", pid=1)
    follower = Follower(store, "r")
    many_parts(store, "r", 5)
    assert follower.read_new().height == 500
    many_parts(store, "r", 3, first=500)
    compact_audited(store, "r", trigger="command")  # merges 3 read and 3 unread parts
    fresh = follower.read_new()
    assert sorted(fresh["seq"].to_list()) == list(range(500, 800))
    assert follower.read_new() is None
    assert follower.parts_read == 8
