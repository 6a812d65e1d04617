"""A run in a process of its own, watched from this one: for notebooks and dashboards.

``start_run()`` returns at once with a :class:`BackgroundRun`. The run
itself (event loop, connections, capture, the built-in target) lives in a
child process (:mod:`streambench.run_process`), so a busy kernel (charts,
analysis, a cell that blocks) can never stall the load generator it watches.
This process only reads what the run reports: ``latest`` is the newest
progress snapshot (about once a second), ``stop()`` ends the run early (it is
then marked aborted, with everything captured kept), ``result()`` waits for
it.

In Jupyter, Kernel > Interrupt stops a run started here (flushed,
``aborted``) and so does restarting or shutting down the kernel; the
built-in target is never signalled by the kernel, only stopped by its run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from streambench.api import RunResult, open_store
from streambench.capture.store import Store
from streambench.errors import RunInterrupted, StreambenchError
from streambench.generate.engine.progress import Progress
from streambench.generate.engine.run import new_run_id
from streambench.run_process import RunRequest
from streambench.scenario.model import Scenario
from streambench.target.embedded import child_env

STOP_GRACE_S = 60.0  # how long an interrupted caller waits for the run to flush


class BackgroundRun:
    """One run in its own process. Build it with :func:`start_run`.

    ``on_progress`` (optional) is called with each snapshot, on a thread of
    this process that reads the run's reports.
    """

    def __init__(self, scenario: Scenario, *, store: Store, run_id: str | None = None,
                 workers: int | None = 1, cluster: str | None = None) -> None:
        self.scenario = scenario
        self.store = store
        self.run_id = run_id or new_run_id(scenario.name)
        self.workers = workers
        self.cluster = cluster
        self.latest: Progress | None = None
        self.on_progress: Callable[[Progress], None] | None = None
        self.pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._finished = threading.Event()
        self._result: RunResult | None = None
        self._error: BaseException | None = None

    def start(self) -> BackgroundRun:
        """Start the run's process and return at once."""
        ours, theirs = socket.socketpair()
        root = os.path.abspath(self.store.root) if self.store.local else self.store.root
        with ours, theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "streambench.run_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=child_env(),
                # same process group as this one on purpose: see streambench.run_process
            )  # fmt: skip
            self._conn = Connection(os.dup(ours.fileno()))
        self.pid = self._process.pid
        self._conn.send(RunRequest(scenario=self.scenario, store_root=root, run_id=self.run_id,
                                   workers=self.workers, cluster=self.cluster))
        threading.Thread(target=self._read, name=f"streambench-run-{self.run_id}",
                         daemon=True).start()
        return self

    def _read(self) -> None:
        """Take the run's reports until it closes its end, then reap it."""
        assert self._conn is not None
        assert self._process is not None
        try:
            while True:
                self._take(self._conn.recv())
        except (EOFError, OSError):
            pass
        code = self._process.wait()
        if self._result is None and self._error is None:
            self._error = StreambenchError(
                f"run {self.run_id}: its process (pid {self.pid}) ended with code {code} "
                "before reporting; what it captured is in the store")
        self._conn.close()
        self._finished.set()

    def _take(self, message: dict[str, Any]) -> None:
        kind = message["kind"]
        if kind == "progress":
            self.latest = message["progress"]
            if self.on_progress is not None:
                self.on_progress(message["progress"])
        elif kind == "done":
            self._result = message["result"]
        elif kind == "failed":
            self._error = message["error"]

    def done(self) -> bool:
        """True once the run has ended and its manifest is final."""
        return self._finished.is_set()

    def stop(self, reason: str = "stopped by user") -> None:
        """Ask the run to end now; it flushes what it captured and is marked aborted."""
        if self._conn is None or self.done():
            return
        with self._send_lock, contextlib.suppress(OSError):
            self._conn.send(("stop", reason))

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait for the run to finish and return its result (re-raises its error)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still running after {timeout}s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def wait_interruptible(self) -> RunResult:
        """:meth:`result`, but an interrupt (Ctrl-C, Kernel > Interrupt) stops the run,
        waits for it to flush and raises :class:`RunInterrupted`."""
        try:
            return self.result()
        except KeyboardInterrupt:
            self.stop("interrupted")
            with contextlib.suppress(TimeoutError):
                self.result(STOP_GRACE_S)
            raise RunInterrupted(self.run_id, "KeyboardInterrupt") from None


def start_run(scenario: Scenario, *, store: Store | str | None = None,
              run_id: str | None = None, workers: int | None = 1,
              cluster: str | None = None) -> BackgroundRun:
    """Start a run in a process of its own and return its handle at once."""
    return BackgroundRun(scenario, store=open_store(store), run_id=run_id, workers=workers,
                         cluster=cluster).start()
