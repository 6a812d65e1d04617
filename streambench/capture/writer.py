"""Capture: rows appended on the event loop, converted and written off it.

The hot path is one ``list.append`` of a tuple per event (``Recorder.append``,
bound once by each client). Timestamps in rows are *monotonic* nanoseconds;
the writer turns them into UTC wall-clock time with one offset taken at start,
so a clock step during a run cannot reorder events.

A row is ``(kind, ts_mono, conn, seq, cid, intended_mono, sent_mono, bytes,
topic, status, error, payload)`` with ``kind`` a :class:`Kind` code and
``None`` where a field does not apply. ``latency_ms`` and ``service_ms`` are
computed vectorised at flush time for ``recv`` rows.

Flushing hands a batch to one writer thread which builds the Arrow table,
redacts it, and writes one part per UTC date under a temporary name before
renaming it into place: a crash loses at most the batch in memory and never
leaves a part a reader would trip over.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streambench.capture.names import check_run_id
from streambench.capture.schema import EVENT_SCHEMA, FAULT_SCHEMA, KIND_NAMES, TIMED_KINDS
from streambench.capture.store import Store

Row = tuple[Any, ...]  # one recorded event (layout in the module docstring)
PART_STRIDE = 100_000  # a shard k's parts are numbered from k * PART_STRIDE
_KINDS = pa.array(KIND_NAMES, pa.string())
_NS_PER_DAY = 86_400 * 1_000_000_000
_SLICE = 1024  # rows converted per GIL hold (about half a millisecond)


class CaptureCounts(TypedDict):
    """What a run (or one shard of it) wrote: the manifest's ``counts``."""

    events: int
    event_bytes: int
    parts: int
    faults: int


def wall_offset_ns() -> int:
    """Add to ``time.monotonic_ns()`` to get epoch nanoseconds (taken once per run)."""
    return time.time_ns() - time.monotonic_ns()


class Recorder:
    """Where clients put events. Single-threaded: only the event loop appends."""

    __slots__ = ("append", "rows")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.append: Callable[[Row], None] = self.rows.append

    def take(self) -> list[Row]:
        """Everything recorded so far; the list object stays (clients hold ``append``)."""
        batch = self.rows.copy()
        self.rows.clear()
        return batch


# One recorder row as Arrow sees it: converting the whole batch as a struct array
# is one pass in C (about 5x faster than transposing the tuples in Python).
ROW_TYPE = pa.struct([
    ("kind", pa.int8()), ("ts", pa.int64()), ("conn", pa.int32()), ("seq", pa.int64()),
    ("cid", pa.string()), ("intended", pa.int64()), ("sent", pa.int64()),
    ("bytes", pa.int32()), ("topic", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("payload", pa.string()),
])


def rows_to_table(rows: Sequence[Row], *, run_id: str, protocol: str, offset_ns: int,
                  worker: int = 0, conn_offset: int = 0, payloads: bool = True) -> pa.Table:
    """Build an EVENT_SCHEMA table from recorder rows (runs in the writer thread).

    ``conn_offset`` turns a shard's connection numbers into the run's.
    """
    n = len(rows)
    # In slices: converting Python objects holds the GIL, and the event loop (the
    # senders) must get it back within a millisecond, not once per batch: a sender
    # kept waiting 5 ms is a message sent 5 ms late (schedule lag).
    structs = pa.chunked_array([pa.array(rows[i:i + _SLICE], type=ROW_TYPE)
                                for i in range(0, n, _SLICE)] or [pa.array([], ROW_TYPE)])
    (kind, ts_mono, conn, seq, cid, intended, sent, nbytes, topic, status, error,
     payload) = structs.flatten()
    ts = _shift(ts_mono, offset_ns)
    intended_ns = _shift(intended, offset_ns)
    sent_ns = _shift(sent, offset_ns)
    is_recv = pc.is_in(kind, pa.array([int(k) for k in TIMED_KINDS], pa.int8()))
    columns = {
        "run_id": pa.repeat(run_id, n).cast(pa.string()),
        "ts": ts.cast(pa.timestamp("ns", tz="UTC")),
        "kind": pc.take(_KINDS, kind),
        "protocol": pa.repeat(protocol, n).cast(pa.string()),
        "conn": pc.add(conn, pa.scalar(conn_offset, pa.int32())) if conn_offset else conn,
        "seq": seq,
        "cid": cid,
        "intended_ns": intended_ns,
        "latency_ms": _ms_if(is_recv, ts, intended_ns),
        "service_ms": _ms_if(is_recv, ts, sent_ns),
        "bytes": nbytes,
        "topic": topic,
        "status": status,
        "error": error,
        "payload": payload if payloads else pa.nulls(n, pa.string()),
        "sent_ns": sent_ns,
        "worker": pa.repeat(worker, n).cast(pa.int32()),
    }
    return pa.table(columns, schema=EVENT_SCHEMA)


def _ms_if(mask: pa.Array, end: pa.Array, start: pa.Array) -> pa.Array:
    """(end - start) in milliseconds where ``mask`` holds, else null."""
    return pc.if_else(mask, pc.divide(pc.subtract(end, start).cast(pa.float64()), 1e6), None)


def _shift(values: pa.Array, offset_ns: int) -> pa.Array:
    return pc.add(values, pa.scalar(offset_ns, pa.int64()))


class PartWriter:
    """Writes tables of one run into ``<table>/date=/run_id=/part-NNNNN.parquet``."""

    def __init__(self, store: Store, table: str, run_id: str, *, first_part: int = 0) -> None:
        self.store = store
        self.table = table
        self.run_id = check_run_id(run_id)
        self.next_part = first_part
        self.rows_written = 0
        self.bytes_written = 0
        self.parts_written = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        time_column = "ts" if "ts" in table.column_names else "start"
        days = pc.divide(table.column(time_column).cast(pa.int64()), _NS_PER_DAY)
        unique_days = pc.unique(days).to_pylist()
        if len(unique_days) == 1:  # the usual case: no copy
            self._write_part(table, _date(unique_days[0]))
            return
        for day in unique_days:  # a batch that straddles midnight UTC
            self._write_part(table.filter(pc.equal(days, day)), _date(day))

    def _write_part(self, table: pa.Table, date: str) -> None:
        store = self.store
        directory = store.partition_dir(self.table, date, self.run_id)
        name = f"part-{self.next_part:05d}.parquet"
        self.next_part += 1
        if "run_id" in table.column_names:  # it is in the path (Hive partitioning)
            table = table.drop_columns(["run_id"])
        where = f"{self.table}/date={date}/run_id={self.run_id}/{name}"
        # The shared lock keeps compaction from swapping the directory while this
        # part's temporary file is in it (locks.py).
        with store.errors(f"write {where}"), store.locks.shared(self.run_id):
            store.files.makedirs(directory)
            with store.files.atomic(f"{directory}/{name}") as f:
                pq.write_table(table, f, compression="zstd")
            size = store.fs.size(f"{directory}/{name}")
        self.rows_written += table.num_rows
        self.parts_written += 1
        self.bytes_written += size


def _date(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


class CaptureWriter:
    """Turns recorder batches into redacted Parquet parts on one background thread.

    ``submit()`` is called from the event loop and returns at once; ``close()``
    waits until every submitted batch is on disk. Capture failing is never
    silent: the first failure in the thread (a full disk, a read-only store:
    a one-line StoreError) is raised by the next ``submit()``, ``wait()`` or
    ``close()``, once. After it the writer writes nothing more; later batches
    are counted in ``rows_dropped``, so the run can still flush its
    bookkeeping, mark its manifest ``failed`` and say what was kept
    (:meth:`finish`).
    """

    def __init__(self, store: Store, run_id: str, *, protocol: str, offset_ns: int,
                 redactor: Any | None = None, payloads: bool = True, worker: int = 0,
                 conn_offset: int = 0) -> None:
        self.events = PartWriter(store, "events", run_id, first_part=worker * PART_STRIDE)
        self.faults = PartWriter(store, "faults", run_id, first_part=worker * PART_STRIDE)
        self.run_id = run_id
        self.protocol = protocol
        self.offset_ns = offset_ns
        self.redactor = redactor
        self.payloads = payloads
        self.worker = worker
        self.conn_offset = conn_offset
        self.failure: BaseException | None = None
        self.rows_dropped = 0
        self._reported = False
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="capture",
                                                           initializer=_yield_cpu)
        self._pending: list[concurrent.futures.Future[None]] = []

    def submit(self, rows: list[Row], *,
               on_table: Callable[[pa.Table], None] | None = None) -> None:
        """Queue ``rows`` for writing; ``on_table`` is called with them as an
        EVENT_SCHEMA table (before redaction) on the writer thread (live progress)."""
        self._raise_failure()
        if rows:
            self._queue(self._write_events, rows, on_table)

    def submit_faults(self, faults: Sequence[dict[str, Any]]) -> None:
        if faults:
            self._queue(self._write_faults, list(faults))

    def _queue(self, write: Callable[..., None], batch: list[Any], *args: Any) -> None:
        self._pending.append(self._pool.submit(self._guarded, write, batch, *args))

    def _guarded(self, write: Callable[..., None], batch: list[Any], *args: Any) -> None:
        """Run one write in the thread; after a failure, count instead of writing."""
        if self.failure is None:
            try:
                write(batch, *args)
                return
            except BaseException as exc:  # kept and raised on the caller's side
                self.failure = exc
        self.rows_dropped += len(batch)

    def _write_events(self, rows: list[Row],
                      on_table: Callable[[pa.Table], None] | None = None) -> None:
        table = rows_to_table(rows, run_id=self.run_id, protocol=self.protocol,
                              offset_ns=self.offset_ns, worker=self.worker,
                              conn_offset=self.conn_offset, payloads=self.payloads)
        if on_table is not None:
            on_table(table)
        if self.redactor is not None:
            table = self.redactor.redact_table(table)
        self.events.write(table)

    def _write_faults(self, faults: list[dict[str, Any]]) -> None:
        self.faults.write(faults_table(faults, run_id=self.run_id))

    def _raise_failure(self) -> None:
        self._pending = [f for f in self._pending if not f.done()]
        if self.failure is not None and not self._reported:
            self._reported = True
            raise self.failure

    def counts(self) -> CaptureCounts:
        """What this writer has put on disk so far (exact once :meth:`close` returned)."""
        return CaptureCounts(events=self.events.rows_written,
                             event_bytes=self.events.bytes_written,
                             parts=self.events.parts_written, faults=self.faults.rows_written)

    def warm_up(self, rows: Sequence[Row], *,
                then: Callable[[pa.Table], object] | None = None) -> None:
        self._pool.submit(self._warm_up, rows, then).result()

    def _warm_up(self, rows: Sequence[Row], then: Callable[[pa.Table], object] | None) -> None:
        """Take ``rows`` through every step of writing but the disk (conversion,
        redaction, Parquet encoding into memory), so the first real batch does not
        pay for imports and first-use set-up: that costs tens of milliseconds of
        GIL, a stall of the event loop, at the run's start. Call it (in a thread)
        before the run's schedule begins; ``then`` gets the table too."""
        import io

        table = rows_to_table(rows, run_id=self.run_id, protocol=self.protocol,
                              offset_ns=self.offset_ns, payloads=self.payloads)
        if then is not None:
            then(table)
        if self.redactor is not None:
            table = self.redactor.redact_table(table)
        pq.write_table(table.drop_columns(["run_id"]), io.BytesIO(), compression="zstd")

    def wait(self) -> None:
        """Block until every batch submitted so far is written (raises a failure)."""
        for future in list(self._pending):
            future.result()
        self._raise_failure()

    def finish(self, rows: list[Row], *, faults: Sequence[dict[str, Any]] = ()
               ) -> BaseException | None:
        """Write the last ``rows`` and ``faults``, then :meth:`close`; return the failure
        not raised yet instead of raising it (the caller records it in the manifest)."""
        if rows and self.failure is None:
            self._queue(self._write_events, rows, None)
        self.submit_faults(faults)
        try:
            self.close()
        except Exception as exc:
            return exc
        return None

    def close(self) -> None:
        """Wait for every batch to be written; raise the failure if not raised yet."""
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True)
        self._raise_failure()


def faults_table(faults: Sequence[dict[str, Any]], *, run_id: str) -> pa.Table:
    """Ground-truth rows (``start_ns``/``end_ns`` epoch ns) as a FAULT_SCHEMA table."""
    def column(name: str) -> list[Any]:
        return [f.get(name) for f in faults]

    return pa.table(
        {
            "run_id": pa.repeat(run_id, len(faults)).cast(pa.string()),
            "source": column("source"),
            "kind": column("kind"),
            "start": pa.array(column("start_ns"), pa.int64()).cast(pa.timestamp("ns", "UTC")),
            "end": pa.array(column("end_ns"), pa.int64()).cast(pa.timestamp("ns", "UTC")),
            "conn": pa.array(column("conn"), pa.int32()),
            "cid": pa.array(column("cid"), pa.string()),
            "detail": pa.array([None if d is None else str(d) for d in column("detail")],
                               pa.string()),
        },
        schema=FAULT_SCHEMA,
    )


def _yield_cpu() -> None:
    """The capture thread runs at nice 10 (Linux: a thread has its own nice value, and
    the thread pools it starts, Polars' for redaction, inherit it): on a busy machine
    the event loop, which measures, gets the CPU first and capture catches up after.
    The warm-up runs on this thread so those pools are started from it."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
