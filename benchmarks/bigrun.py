"""A large synthetic run written straight to a store with pyarrow, in chunks.

Used by ``benchmarks/analyze_speed.py``: hundreds of millions of events, far
more than :mod:`streambench.testing.synth` (which simulates a whole run in
memory) can build. A constant-rate schedule over ``connections`` connections,
log-normal service times, schedule lag of a few tens of microseconds, JSON
payloads on sends and replies, and three faults: a 2 s stall (replies held,
then released), 5% of replies dropped for 5 s (timeout rows instead), and 10%
of replies with another field set for 3 s (schema drift). Parts are written
in time order (as the capture writer and compaction do), each a few million
rows in row groups of a million, under a temporary name and renamed.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streambench.capture.schema import EVENT_SCHEMA

MS = 1_000_000
S = 1_000_000_000
START = datetime(2024, 1, 1, tzinfo=UTC)
FILE_SCHEMA = EVENT_SCHEMA.remove(EVENT_SCHEMA.get_field_index("run_id"))


@dataclass(frozen=True)
class BigRun:
    run_id: str = "big"
    events: int = 10_000_000  # about: one send and one reply per message
    rate: float = 5000.0  # messages/s
    connections: int = 100
    timeout_s: float = 5.0
    chunk_messages: int = 2_500_000
    seed: int = 0

    @property
    def messages(self) -> int:
        return self.events // 2

    @property
    def duration_s(self) -> float:
        return self.messages / self.rate

    @property
    def start_ns(self) -> int:
        return int(START.timestamp()) * S

    def fault_windows(self) -> dict[str, tuple[int, int]]:
        """Ground truth: fault kind -> (start, end) epoch ns."""
        d = self.duration_s
        return {kind: (self.start_ns + int(d * at * S), self.start_ns + int((d * at + span) * S))
                for kind, at, span in (("stall", 0.3, 2.0), ("drop", 0.6, 5.0),
                                       ("schema_drift", 0.8, 3.0))}  # fmt: skip


def _pick(values: list[str], index: np.ndarray) -> pa.Array:
    """``values[index]`` as an Arrow string array, without Python strings per row."""
    return pc.take(pa.array(values, pa.string()), pa.array(index))


def _strings(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _chunk(run: BigRun, first: int, last: int, rng: np.random.Generator) -> pa.Table:
    m = np.arange(first, last, dtype=np.int64)
    intended = run.start_ns + (m * S / run.rate).astype(np.int64)
    sent = intended + rng.exponential(30_000, m.size).astype(np.int64)
    recv = sent + (rng.lognormal(np.log(5.0), 0.35, m.size) * MS).astype(np.int64)
    faults = run.fault_windows()
    stall = faults["stall"]
    held = (recv >= stall[0]) & (recv < stall[1])
    recv[held] = stall[1] + np.arange(held.sum(), dtype=np.int64) * 10_000
    drop_window = (intended >= faults["drop"][0]) & (intended < faults["drop"][1])
    lost = drop_window & (rng.random(m.size) < 0.05)
    drift_window = (intended >= faults["schema_drift"][0]) & (intended < faults["schema_drift"][1])
    drifted = drift_window & (rng.random(m.size) < 0.10)
    conn = (m % run.connections).astype(np.int32)
    seq = m // run.connections
    ok = ~lost
    n_send, n_recv, n_lost = m.size, int(ok.sum()), int(lost.sum())
    kinds = np.concatenate([np.zeros(n_send, np.int8), np.ones(n_recv, np.int8),
                            np.full(n_lost, 2, np.int8)])  # fmt: skip
    ts = np.concatenate([sent, recv[ok], intended[lost] + int(run.timeout_s * S)])
    order = np.argsort(ts, kind="stable")
    pick = np.concatenate([np.arange(n_send), np.flatnonzero(ok), np.flatnonzero(lost)])[order]
    kinds, ts = kinds[order], ts[order]
    is_recv = kinds == 1
    c, q = pa.array(conn[pick]), pa.array(seq[pick])
    seq_text = pc.cast(q, pa.string())
    cid = _strings(pc.cast(c, pa.string()), "-", seq_text)
    body = _pick(['"text":"hello stream"}', '"body":"hello stream","v":2}'],
                 (drifted[pick] & is_recv).astype(np.int8))  # fmt: skip
    payload = _strings('{"cid":"', cid, '","seq":', seq_text, ",", body)
    payload = pc.if_else(pa.array(kinds == 2), pa.scalar(None, pa.string()), payload)
    latency = np.where(is_recv, (ts - intended[pick]) / MS, np.nan)
    service = np.where(is_recv, (ts - sent[pick]) / MS, np.nan)
    nulls = ~is_recv
    n = ts.size
    columns = {
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "kind": _pick(["send", "recv", "timeout"], kinds),
        "protocol": _pick(["websocket"], np.zeros(n, np.int8)),
        "conn": c,
        "seq": q,
        "cid": cid,
        "intended_ns": pa.array(intended[pick]),
        "latency_ms": pa.array(latency, mask=nulls),
        "service_ms": pa.array(service, mask=nulls),
        "bytes": pc.cast(pc.binary_length(payload), pa.int32()),
        "topic": _pick(["/echo"], np.zeros(n, np.int8)),
        "status": pa.nulls(n, pa.string()),
        "error": pc.if_else(pa.array(kinds == 2), "timeout", pa.scalar(None, pa.string())),
        "payload": payload,
        "sent_ns": pa.array(sent[pick], mask=kinds == 2),
        "worker": pa.array(np.zeros(n, np.int32)),
    }
    return pa.table(columns, schema=FILE_SCHEMA)


def _churn(run: BigRun, kind: str, ts: int) -> pa.Table:
    n = run.connections
    columns = {name: pa.nulls(n, field.type) for name, field in
               zip(FILE_SCHEMA.names, FILE_SCHEMA, strict=True)}  # fmt: skip
    columns |= {"ts": pa.array(np.full(n, ts), pa.timestamp("ns", tz="UTC")),
                "kind": pa.array([kind] * n), "protocol": pa.array(["websocket"] * n),
                "conn": pa.array(np.arange(n, dtype=np.int32)),
                "worker": pa.array(np.zeros(n, np.int32))}  # fmt: skip
    return pa.table(columns, schema=FILE_SCHEMA)


def write_big_run(root: str | Path, run: BigRun, *, processes: int = 2) -> int:
    """Write ``run`` into the store at ``root`` (chunks built by ``processes``
    processes); return the number of events written."""
    firsts = range(0, run.messages, run.chunk_messages)
    tasks = [(run, Path(root), number + 1, first) for number, first in enumerate(firsts)]
    written = _write(root, run, 0, _churn(run, "connect", run.start_ns - 10 * MS))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        written += sum(pool.imap_unordered(_write_chunk, tasks))
    end = run.start_ns + int((run.duration_s + run.timeout_s + 1) * S)
    written += _write(root, run, len(tasks) + 1, _churn(run, "disconnect", end))
    _manifest(root, run, written)
    return written


def _write_chunk(task: tuple[BigRun, Path, int, int]) -> int:
    run, root, number, first = task
    rng = np.random.default_rng([run.seed, number])
    last = min(first + run.chunk_messages, run.messages)
    return _write(root, run, number, _chunk(run, first, last, rng))


DAY = 86_400 * S


def _write(root: str | Path, run: BigRun, number: int, table: pa.Table) -> int:
    """Write ``table`` (in time order) as part ``number`` of each date partition
    its rows fall in: a run longer than a day spans two or more, as captures do."""
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    days = ts // DAY
    for day in np.unique(days):
        rows = np.flatnonzero(days == day)
        folder = Path(root, "events", f"date={datetime.fromtimestamp(day * 86_400, UTC):%Y-%m-%d}",
                      f"run_id={run.run_id}")  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".part-{number:05d}.parquet.tmp"
        pq.write_table(table.slice(rows[0], rows.size), tmp, compression="zstd",
                       row_group_size=1_000_000)  # fmt: skip
        tmp.rename(folder / f"part-{number:05d}.parquet")
    return table.num_rows


def _manifest(root: str | Path, run: BigRun, events: int) -> None:
    runs = Path(root, "runs")
    runs.mkdir(parents=True, exist_ok=True)
    manifest = {
        "run_id": run.run_id, "status": "completed", "started": START.isoformat(),
        "scenario": {"name": "big", "load": {"rate": run.rate, "duration": run.duration_s,
                                             "connections": run.connections,
                                             "timeout": run.timeout_s}},
        "counts": {"events": events},
    }  # fmt: skip
    (runs / f"{run.run_id}.json").write_text(json.dumps(manifest))
