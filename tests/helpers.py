"""Helpers shared by the test modules (not tests themselves)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from streambench.capture.merge import leaves
from streambench.capture.store import Store
from streambench.capture.writer import PART_STRIDE
from streambench.scenario.model import Scenario

# Slow machines can scale every wait in the tests (like websockets' tests/utils.py MS).
TIME_SCALE = float(os.environ.get("STREAMBENCH_TEST_TIME_SCALE", "1"))


def scenario(**sections: Any) -> Scenario:
    """A small valid scenario; keyword arguments replace whole top-level sections."""
    doc: dict[str, Any] = {
        "name": "test",
        "target": {"protocol": "websocket", "url": "embedded"},
        "load": {"connections": 2, "rate": 100, "duration": "1s"},
        "message": {"body": {"text": "{{sentence}}", "value": 1.5}},
        "capture": {"redaction": {"allow": ["text", "value"]}},
    }
    doc.update(sections)
    return Scenario.model_validate(doc)


def write_scenario(path: Path, **sections: Any) -> Path:
    path.write_text(yaml.safe_dump(scenario(**sections).model_dump(mode="json",
                                                                   exclude_defaults=True)))
    return path


def wait_for(condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition"
             ) -> Any:
    """Poll a condition (a file appears, a port opens) until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_workers(store: Store) -> list[dict[str, Any]] | None:
    """The worker list of the running manifest of a sharded run, once every shard is ready."""
    runs = store.runs()
    return runs[0].get("workers") if runs else None


def parts_of(store: Store, worker: int) -> list[str]:
    """The event parts one worker of a sharded run wrote (parts are numbered per worker;
    compaction may have merged them since, so the files' lineage says whose they were)."""
    return [leaf.name for run in store.runs() for leaf in leaves(store, "events", run["run_id"])
            if int(leaf.name.removeprefix("part-").removesuffix(".parquet")) // PART_STRIDE
            == worker]


def kill_worker_1(proc: subprocess.Popen[str], store: Store, *, start_timeout: float
                  ) -> tuple[list[dict[str, Any]], str, str]:
    """Once worker 1 of a sharded CLI run has written a part, kill -9 it; let the run end.

    Returns the manifest's worker list and the run's stdout and stderr; the run's whole
    process group is killed if it does not end by itself.
    """
    try:
        workers = wait_for(lambda: running_workers(store), timeout=start_timeout,
                           what="running workers")
        wait_for(lambda: parts_of(store, 1), timeout=20, what="a part from worker 1")
        os.kill(workers[1]["pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return workers, out, err


def store_text(root: Path) -> str:
    """Every byte under a store as text: Parquet parts decoded (every column, every
    row), every other file (manifests, temporaries, anything) as it is on disk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        chunks.append(str(path.relative_to(root)))
        raw = path.read_bytes()
        chunks.append(raw.decode("utf-8", "replace"))
        if raw[:4] == b"PAR1":
            table = pq.read_table(path)
            chunks += [str(value) for column in table.columns
                       if pa.types.is_string(column.type) for value in column.to_pylist()]
    return "\n".join(chunks)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for running ``python -m streambench`` from this checkout."""
    import sys

    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **extra}
