"""Fixture builders for the analysis tests: hand-made event frames and synthetic stores.

Synthetic runs come from :mod:`streambench.testing.synth` (realistic rate,
latency, noise and injected faults); :func:`events` builds small exact frames
from a few dicts when a test needs to know every number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from streambench.capture.schema import EVENT_SCHEMA
from streambench.testing.synth import InjectedFault, SyntheticRun, synth_run, write_run

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000
S = 1_000_000_000

__all__ = [
    "T0",
    "T0_NS",
    "InjectedFault",
    "S",
    "SyntheticRun",
    "events",
    "synth_run",
    "write_run",
    "write_synthetic",
]  # fmt: skip


def events(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    """Events from dicts with times in seconds after T0: ``t`` (ts) and ``intended``.

    Missing columns get sensible defaults (run_id "r", protocol websocket,
    conn 0); ``cid`` is derived from conn and seq.
    """
    full = []
    for given in rows:
        row = dict(given)
        t = row.pop("t")
        intended = row.pop("intended", None)
        item = {"run_id": "r", "protocol": "websocket", "conn": 0, **row,
                "ts": T0_NS + round(t * S)}  # fmt: skip
        if intended is not None:
            item["intended_ns"] = T0_NS + round(intended * S)
        if item.get("seq") is not None:
            item.setdefault("cid", f"{item['conn']}-{item['seq']}")
        full.append(item)
    frame = pl.DataFrame(full, infer_schema_length=None)
    frame = frame.with_columns(pl.from_epoch("ts", "ns").dt.replace_time_zone("UTC"))
    for field in EVENT_SCHEMA:
        if field.name not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(field.name))
    schema = pl.from_arrow(EVENT_SCHEMA.empty_table()).schema  # type: ignore[union-attr]
    return frame.select(EVENT_SCHEMA.names).cast(dict(schema)).lazy()


def exchange(seq: int, intended: float, latency_ms: float, *, conn: int = 0) -> list[dict]:
    """A send at ``intended`` and its reply ``latency_ms`` later."""
    reply = intended + latency_ms / 1000
    return [
        {"t": intended, "intended": intended, "kind": "send", "conn": conn, "seq": seq,
         "sent_ns": T0_NS + round(intended * S)},
        {"t": reply, "intended": intended, "kind": "recv", "conn": conn, "seq": seq,
         "latency_ms": latency_ms, "service_ms": latency_ms,
         "payload": f'{{"cid":"{conn}-{seq}","seq":{seq},"text":"x"}}'},
    ]  # fmt: skip


def write_synthetic(root: Path, **options: Any) -> dict:
    """Write one synthetic run into the store at ``root``; returns its manifest."""
    return write_run(root, SyntheticRun(**options))


def write_health(root: Path, run_id: str, rows: list[dict[str, Any]], *,
                 date: str = "2024-01-01") -> None:
    """Write process health rows (HEALTH_SCHEMA, ``ts`` in epoch ns) as one part of
    ``run_id`` in the store at ``root``, the way the engine records them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streambench.capture.schema import HEALTH_SCHEMA
    from streambench.capture.store import Store

    schema = HEALTH_SCHEMA.remove(HEALTH_SCHEMA.get_field_index("run_id"))
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    folder = Path(Store(root).partition_dir("health", date, run_id))
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), folder / "part-00000.parquet")


def health_rows(*, minutes: float, growth: dict[str, float], start_ns: int = T0_NS,
                base_mb: float = 180.0, step: dict[str, float] | None = None,
                seed: int = 0) -> list[dict[str, Any]]:
    """One sample a second per process (``target`` and client worker 0): memory
    growing linearly by ``growth[source]`` (relative, over the whole span) or
    jumping once by ``step[source]`` halfway, with a little noise."""
    import random

    rng = random.Random(seed)
    seconds = int(minutes * 60)
    rows = []
    for source in ("target", "client"):
        for s in range(seconds):
            grown = growth.get(source, 0.0) * s / seconds
            jump = (step or {}).get(source, 0.0) if s >= seconds // 2 else 0.0
            mb = base_mb * (1 + grown + jump) + rng.uniform(-0.5, 0.5)
            rows.append({"ts": start_ns + s * S, "interval_s": 1.0, "source": source,
                         "worker": 0 if source == "client" else None, "pid": 100,
                         "rss_bytes": int(mb * 1024 * 1024), "open_files": 40 + s % 3,
                         "cpu_s": 0.3, "parts_written": s if source == "client" else None,
                         "loop_stall_ms": 1.0 if source == "client" else None,
                         "connections": 4})  # fmt: skip
    return rows
