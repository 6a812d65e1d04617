"""The run records its own health beside its events (docs/analysis.md#process-health-rows).

Real runs on the built-in target: one row per second per client process and
for the target, with memory, open files, CPU, parts written, connections, and
the longest event-loop stall; a thread that holds the generator's GIL shows
up as stalls in the seconds it ran.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from streambench.api import execute, run_async
from streambench.capture.store import Store
from tests.helpers import scenario

pytestmark = pytest.mark.serial  # timing judged against the machine: run alone

HOG_S = 1.5


class GilHog:
    """Once the run sends, holds this process's GIL in bites of ~0.1 s for HOG_S."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.span_ns: tuple[int, int] | None = None
        self.data = [random.random() for _ in range(400_000)]
        self.thread = threading.Thread(target=self._hog, name="test-gil-hog", daemon=True)
        self.thread.start()

    def _hog(self) -> None:
        if not self.go.wait(timeout=60):
            return
        started, deadline = time.time_ns(), time.monotonic() + HOG_S
        while time.monotonic() < deadline:
            sorted(self.data)  # one C call: the GIL is held all along
            time.sleep(0.002)
        self.span_ns = (started, time.time_ns())

    def on_progress(self, _progress: object) -> None:
        self.go.set()


async def test_a_run_records_its_client_and_target_health(store: Store) -> None:
    hog = GilHog()
    result = await run_async(scenario(load={"connections": 2, "rate": 200, "duration": "4s"}),
                             store=store, on_progress=hog.on_progress)  # fmt: skip
    hog.thread.join(timeout=10)
    health = store.health(result.run_id).collect().sort("ts")
    client = health.filter(source="client")
    target = health.filter(source="target")
    assert client.height >= 4
    assert target.height >= 4
    assert client["worker"].unique().to_list() == [0]
    assert client["pid"].unique().to_list() == [os.getpid()]  # run_async: this process
    assert target["pid"].n_unique() == 1
    assert target["pid"][0] != os.getpid()
    assert target["worker"].null_count() == target.height
    assert (health["rss_bytes"] > 10 << 20).all()
    assert (health["open_files"] > 0).all()
    assert (health["cpu_s"] >= 0).all()
    assert health["interval_s"].max() < 2.0
    parts = client["parts_written"]
    assert parts.is_sorted()
    # sampled as they happen (the writer may be behind; the run's last flush comes after)
    assert 0 < parts[-1] <= result.manifest["counts"]["parts"]
    assert client["connections"].max() == 2
    # the hog's seconds show as event-loop stalls of its own length, others do not matter
    assert hog.span_ns is not None
    start, end = hog.span_ns
    during = client.filter((pl.col("ts").dt.epoch("ns") > start)
                           & (pl.col("ts").dt.epoch("ns") - pl.col("interval_s") * 1e9 < end))
    assert during["loop_stall_ms"].max() >= 50, during


def test_each_worker_of_a_sharded_run_records_its_own_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    result = execute(scenario(load={"connections": 2, "rate": 100, "duration": "2s"}),
                     store=store, workers=2, handle_signals=False)  # fmt: skip
    health = store.health(result.run_id).collect()
    client = health.filter(source="client")
    assert sorted(client["worker"].unique().to_list()) == [0, 1]
    assert client["pid"].n_unique() == 2
    assert os.getpid() not in client["pid"].to_list()  # each shard samples itself
    assert health.filter(source="target").height >= 2  # the driver samples the target
    assert client["loop_stall_ms"].null_count() == 0
