"""Helpers for store tests: real parts, real manifests, the CLI as a user runs it."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streambench.capture.redact import Redactor
from streambench.capture.schema import EVENT_SCHEMA
from streambench.capture.store import Store
from streambench.scenario.model import Redaction

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "streambench-test"  # the bucket the local S3 server holds (conftest.py)


def finished(store: Store, run_id: str, *, status: str = "completed", **extra: Any) -> None:
    """A manifest of a run that ended (no host or pid: never stale, never running)."""
    store.write_manifest({"run_id": run_id, "status": status,
                          "started": extra.pop("started", "2026-11-01T00:00:00Z"),
                          "scenario": {"name": "t", **extra.pop("scenario", {})}, **extra})


def event_table(seqs: range, *, day: str = "2026-11-02", payload: str = "{}") -> pa.Table:
    """Events with the given ``seq`` values (unique per test: a torn read shows as a
    duplicate or a missing seq), all on ``day``."""
    n = len(seqs)
    when = datetime.fromisoformat(f"{day}T10:00:00+00:00").astimezone(UTC)
    columns: dict[str, list[Any]] = {"ts": [when] * n, "kind": ["recv"] * n,
                                     "protocol": ["websocket"] * n, "conn": [0] * n,
                                     "seq": list(seqs), "payload": [payload] * n}
    return pa.table({f.name: pa.array(columns.get(f.name, [None] * n), f.type)
                     for f in EVENT_SCHEMA if f.name != "run_id"})


def write_part(store: Store, run_id: str, seqs: range, *, day: str = "2026-11-02",
               name: str | None = None, payload: str = "{}",
               table: pa.Table | None = None) -> str:
    """One part file as the capture writer leaves it (atomic, private, locked)."""
    folder = store.partition_dir("events", day, run_id)
    name = name or f"part-{seqs.start:06d}.parquet"
    with store.locks.shared(run_id):
        store.files.makedirs(folder)
        with store.files.atomic(f"{folder}/{name}") as f:
            pq.write_table(table if table is not None else event_table(
                seqs, day=day, payload=payload), f)
    return f"{folder}/{name}"


HASHING = Redaction(allow=("text",), hash=("user_id",))  # key: $STREAMBENCH_HASH_KEY


def hashing_run(store: Store, run_id: str) -> None:
    """A finished run whose manifest says ``user_id`` was hashed (so forget searches it)."""
    finished(store, run_id, scenario={"capture": {"redaction": HASHING.model_dump(
        mode="json")}})


def users_part(store: Store, run_id: str, users: list[str], *, start: int,
               day: str = "2026-11-02") -> str:
    """A part whose rows carry ``{"user_id": <hashed user>, "text": "hi"}`` payloads."""
    seqs = range(start, start + len(users))
    table = event_table(seqs, day=day)
    payloads = pa.array([json.dumps({"user_id": u, "text": "hi"}) for u in users])
    table = table.set_column(table.schema.get_field_index("payload"), "payload", payloads)
    with_run = table.add_column(0, "run_id", pa.repeat(run_id, len(users)).cast(pa.string()))
    hashed = Redactor(HASHING).redact_table(with_run.cast(EVENT_SCHEMA)).drop_columns(["run_id"])
    return write_part(store, run_id, seqs, day=day, table=hashed)


class Collected(logging.Handler):
    """Log records of one logger, whatever the CLI did to streambench's handlers."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Collected:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
        cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``streambench ARGS`` in a fresh process, as a user types it."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "streambench", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=full_env, check=False)


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line an error gave on stderr (fails if it was a traceback or several)."""
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("streambench: error:")]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    return lines[0]


def one_line(err: str, expected: str) -> None:
    """``err`` (a command's stderr) is exactly one line, holding ``expected``."""
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    assert expected in err, err


def kill_9_at(script: str, store: Store, run_id: str, step: str, marker: Path) -> None:
    """Run ``script`` (a compaction that touches ``marker`` at ``step`` and then blocks)
    in a child process and SIGKILL it there."""
    from tests.helpers import wait_for

    proc = subprocess.Popen([sys.executable, "-c", script, store.root, run_id, step, str(marker)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for(marker.exists, timeout=30, what=f"compaction to reach {step!r}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
