"""A run in a process of its own: ``python -m streambench.run_process FD``.

Started by :class:`streambench.background.BackgroundRun` (notebooks, the
dashboard, ``streambench.run`` inside a running event loop), so nothing of
the caller's process (a Jupyter kernel drawing charts, a cell crunching
numbers) shares the load generator's event loop or GIL. The caller only
reads progress.

The two processes talk over one socket (``FD``, inherited) carrying pickled
messages (:class:`multiprocessing.connection.Connection` framing):

* caller -> run: first a :class:`RunRequest`, then ``("stop", reason)`` at
  any time;
* run -> caller: ``{"kind": "progress", "progress": Progress}`` about once a
  second, then exactly one of ``{"kind": "done", "result": RunResult}`` or
  ``{"kind": "failed", "error": exception}``.

How the run ends early, always flushed and marked ``aborted``:

* ``("stop", reason)`` from the caller (the dashboard's stop button);
* SIGINT or SIGTERM: the run stays in the caller's process group on purpose,
  so Jupyter's Kernel > Interrupt (a SIGINT to the kernel's group) stops the
  run it started even while the kernel is idle; the built-in target has a
  session of its own and never sees that signal
  (:mod:`streambench.target.embedded`);
* end-of-file on the socket: the caller is gone (the kernel was restarted,
  shut down or killed), so nobody can stop the run any more.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from streambench.generate.engine.lifecycle import RunControl
from streambench.scenario.model import Scenario

CALLER_GONE = "the process that started the run went away"


@dataclass(frozen=True)
class RunRequest:
    """What the run process is asked to run (picklable)."""

    scenario: Scenario
    store_root: str  # absolute for a local store: the run process opens it itself
    run_id: str
    workers: int | None = 1
    cluster: str | None = None


class CallerLink:
    """The run's end of the socket: reports go out, commands come in on a thread."""

    def __init__(self, conn: Connection, control: RunControl) -> None:
        self.conn = conn
        self.control = control
        self._send_lock = threading.Lock()

    def listen(self) -> None:
        threading.Thread(target=self._read, name="run.commands", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                command = self.conn.recv()
                if command[0] == "stop":
                    self.control.stop_threadsafe(str(command[1]))
        except (EOFError, OSError):
            self.control.stop_threadsafe(CALLER_GONE)

    def report(self, message: dict[str, Any]) -> None:
        """Send a message; a caller that went away is not an error (the run goes on to flush)."""
        with self._send_lock, contextlib.suppress(OSError):
            self.conn.send(message)


def stop_on_signals(control: RunControl) -> None:
    """SIGINT/SIGTERM stop the run cleanly at any moment of this process's life.

    While the run's loop is up, the engine's own handlers take over (and put
    these back afterwards, see ``lifecycle.stop_on_signals``).
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: control.stop_threadsafe(
            signal.Signals(number).name))


def serve(request: RunRequest, link: CallerLink) -> dict[str, Any]:
    """Run ``request`` to its end; the message that says how it ended."""
    from streambench.api import execute, summarized
    from streambench.capture.manifest import Manifest
    from streambench.capture.store import Store
    from streambench.errors import RunInterrupted
    from streambench.generate.engine.run import RunOutcome
    from streambench.generate.scale.shards import portable

    store = Store(request.store_root)

    def progress(snapshot: Any) -> None:
        link.report({"kind": "progress", "progress": snapshot})

    try:
        result = execute(request.scenario, store=store, workers=request.workers,
                         cluster=request.cluster, run_id=request.run_id, on_progress=progress,
                         control=link.control, handle_signals=True)
    except RunInterrupted:  # a signal stopped it: flushed, aborted; summarise what was kept
        manifest = Manifest(**store.manifest(request.run_id))  # type: ignore[typeddict-item]
        result = summarized(RunOutcome(request.run_id, "aborted", manifest), store)
    except BaseException as exc:  # reported to the caller, who raises it
        return {"kind": "failed", "error": portable(exc)}
    return {"kind": "done", "result": result}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    conn = Connection(int(args[0]))
    control = RunControl()
    stop_on_signals(control)
    link = CallerLink(conn, control)
    try:
        request = conn.recv()
    except (EOFError, OSError):
        return  # the caller went away before saying what to run
    link.listen()
    link.report(serve(request, link))
    conn.close()


if __name__ == "__main__":
    main()
