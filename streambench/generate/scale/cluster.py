"""Shards as tasks on a Dask distributed cluster: ``streambench run --cluster``.

Dask is the engine: each shard is one ``Client.submit`` of a plain function
(:func:`dask_shard`), pinned to a worker of its own. The shards' ``ready`` and
``progress`` messages travel on a Dask ``Queue``; the start time is a Dask
``Variable`` and a stop is a Dask ``Event``. The driver is the process that
ran ``streambench run``; it writes the manifest and starts the embedded
target (which must then be reachable from the workers: on more than one
machine give a real ``--target``).

``--cluster local:N`` starts a ``LocalCluster`` of N single-threaded worker
processes on this machine (what the tests use); ``--cluster
tcp://scheduler:8786`` uses a running cluster. Run one single-threaded worker
per core (``dask worker tcp://scheduler:8786 --nworkers auto --nthreads 1``):
a shard is an event loop, so two shards in one process share one core.

Every worker must reach the store at the same root: an absolute path on a
shared file system, or an fsspec URL (``s3://bucket/prefix`` with credentials
in each worker's environment).

A worker that dies (its address leaves the scheduler, or its task errs) is
reported by name and the run is marked ``partial``; its task is cancelled
rather than re-run, so no shard is ever run twice.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import threading
import time
from typing import Any

from streambench.capture.store import Store
from streambench.errors import ConfigError
from streambench.generate.engine.drive import OnProgress
from streambench.generate.engine.lifecycle import RunControl
from streambench.generate.engine.run import RunOutcome
from streambench.generate.scale.local import run_sharded
from streambench.generate.scale.shards import ShardSpec, run_shard
from streambench.scenario.model import Scenario

WORKER_CHECK_S = 0.5  # how often the driver asks the scheduler which workers are alive


def run_cluster(scenario: Scenario, *, store: Store, cluster: str, run_id: str | None = None,
                on_progress: OnProgress = None, control: RunControl | None = None,
                handle_signals: bool = True) -> RunOutcome:
    """Run one shard per Dask worker of ``cluster`` (``tcp://host:port`` or ``local:N``)."""
    client, local = connect(cluster)
    try:
        backend = DaskBackend(client)
        return run_sharded(scenario, store=store, backend=backend,
                           workers=len(backend.addresses), run_id=run_id,
                           on_progress=on_progress, control=control,
                           handle_signals=handle_signals)
    finally:
        client.close()
        if local is not None:
            local.close()


def connect(cluster: str) -> tuple[Any, Any]:
    """``(client, local_cluster or None)`` for a ``--cluster`` value; ConfigError if unusable."""
    from distributed import Client, LocalCluster

    if cluster.startswith("local:"):
        count = cluster.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--cluster {cluster}: expected local:N with N >= 1 workers")
        local = LocalCluster(n_workers=int(count), processes=True, threads_per_worker=1,
                             dashboard_address=None, silence_logs=logging.ERROR)
        return Client(local), local
    try:
        return Client(cluster, timeout="10s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--cluster {cluster}: no Dask scheduler answers ({exc})") from exc


class DaskBackend:
    """The driver's side: submit, relay the queue, notice dead workers, start, stop."""

    start_margin_s = 0.25  # a Variable reaches the workers through the scheduler
    shared_cores: int | None = None  # each worker has its own

    def __init__(self, client: Any) -> None:
        from distributed import Event, Queue, Variable

        self.client = client
        token = secrets.token_hex(4)
        self.names = {"messages": f"streambench-{token}-messages",
                      "start": f"streambench-{token}-start",
                      "started": f"streambench-{token}-started",
                      "stop": f"streambench-{token}-stop"}
        self._queue = Queue(self.names["messages"], client=client)
        self._start = Variable(self.names["start"], client=client)
        self._started = Event(self.names["started"], client=client)
        self._stop = Event(self.names["stop"], client=client)
        self.addresses = sorted(self._alive())
        if not self.addresses:
            raise ConfigError(f"Dask cluster {client.scheduler.address} has no workers")
        self.futures: dict[int, Any] = {}
        self.assigned: dict[int, str] = {}
        self._ended: set[int] = set()
        self._checked = 0.0

    def _alive(self) -> set[str]:
        return set(self.client.scheduler_info(n_workers=-1)["workers"])

    def launch(self, specs: list[ShardSpec]) -> None:
        for spec in specs:
            address = self.addresses[spec.worker % len(self.addresses)]
            self.assigned[spec.worker] = address
            self.futures[spec.worker] = self.client.submit(
                dask_shard, spec, self.names, key=f"streambench-shard-{spec.run_id}-{spec.worker}",
                workers=[address], allow_other_workers=False, pure=False, retries=0)

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        messages = self._drain(timeout)
        alive = None
        if time.monotonic() - self._checked >= WORKER_CHECK_S:
            alive, self._checked = self._alive(), time.monotonic()
        for worker, future in self.futures.items():
            if worker in self._ended:
                continue
            ended = self._ended_message(worker, future, alive)
            if ended is not None:
                self._ended.add(worker)
                messages += self._drain(0)  # its last progress is already queued
                messages.append(ended)
        return messages

    def _ended_message(self, worker: int, future: Any, alive: set[str] | None
                       ) -> dict[str, Any] | None:
        address = self.assigned[worker]
        if future.status == "finished":
            return {"kind": "done", "worker": worker, "result": future.result()}
        if future.status in ("error", "cancelled", "lost"):
            what = future.exception() if future.status == "error" else future.status
            reason = f"its task ended: {what}"
        elif alive is not None and address not in alive:
            future.cancel()  # never re-run a shard elsewhere: it would write its parts twice
            reason = "it left the cluster"
        else:
            return None
        return {"kind": "lost", "worker": worker,
                "reason": f"worker {worker} (dask worker {address}) died: {reason}"}

    def _drain(self, timeout: float) -> list[dict[str, Any]]:
        """What is queued now; if nothing, look once more after ``timeout``.

        Not ``Queue.get(timeout=)``: the scheduler logs every such timeout
        as an error with a traceback.
        """
        found: list[dict[str, Any]] = self._queue.get(batch=True)
        if not found and timeout:
            time.sleep(timeout)
            found = self._queue.get(batch=True)
        return found

    def start(self, epoch_ns: int) -> None:
        self._start.set(epoch_ns)
        self._started.set()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        for future in self.futures.values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)  # each shard flushes what it holds
        with contextlib.suppress(Exception):
            self._start.delete()
        with contextlib.suppress(Exception):
            self._queue.close()

    def describe(self) -> dict[str, Any]:
        return {"mode": "dask", "scheduler": self.client.scheduler.address,
                "workers": dict(sorted(self.assigned.items()))}


class DaskLink:
    """A shard's link on a Dask worker; messages go out through a forwarding thread,
    so a round trip to the scheduler never stalls the shard's event loop."""

    def __init__(self, names: dict[str, str]) -> None:
        from distributed import Event, Queue, Variable, get_worker

        self._queue = Queue(names["messages"])
        self._start = Variable(names["start"])
        self._started = Event(names["started"])
        self._stop = Event(names["stop"])
        self.address = get_worker().address
        self._outbox: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._forward, name="shard.forward", daemon=True)
        self._thread.start()

    def report(self, message: dict[str, Any]) -> None:
        if message["kind"] == "ready":
            message = {**message, "address": self.address}
        self._outbox.put(message)

    def _forward(self) -> None:
        while (message := self._outbox.get()) is not None:
            with contextlib.suppress(Exception):  # a lost message is a missed progress line
                self._queue.put(message)

    def close(self) -> None:
        """Send what is queued (call before the task returns)."""
        self._outbox.put(None)
        self._thread.join(10)

    def wait_start(self) -> int | None:
        while not self._started.wait(0.5):
            if self._stop.is_set():
                return None
        return int(self._start.get())

    def wait_stop(self, timeout: float) -> bool:
        return bool(self._stop.wait(timeout))


def dask_shard(spec: ShardSpec, names: dict[str, str]) -> dict[str, Any]:
    """The task a Dask worker runs: one shard, its messages flushed before it returns."""
    link = DaskLink(names)
    try:
        return run_shard(spec, link)
    finally:
        link.close()
