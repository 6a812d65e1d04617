"""What surrounds a run in any process: its stop handle, signals, loop and target.

Shared by the single-process engine (:mod:`.run`) and the shards and driver
of a run over many processes (:mod:`streambench.generate.scale`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from streambench.capture.writer import CaptureWriter
from streambench.errors import StreambenchError
from streambench.scenario.model import Scenario, server_knobs

T = TypeVar("T")


@dataclass
class RunControl:
    """A handle to stop a run from elsewhere (a signal, a dashboard's stop button).

    :meth:`stop` is called on the run's event loop; :meth:`stop_threadsafe`
    from any other thread (a pipe reader, a notebook). The run calls
    :meth:`bind` once its loop is running, so a stop asked before that is
    not lost.
    """

    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    # re-entrant: a signal handler of the main thread may stop while bind() holds it
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def stop(self, reason: str = "stopped") -> None:
        if self.reason is None:
            self.reason = reason
        self.stop_event.set()

    def bind(self) -> None:
        """Attach to the running loop (the run calls this first thing)."""
        with self.lock:
            self.loop = asyncio.get_running_loop()
        if self.reason is not None:  # asked to stop before the loop ran
            self.stop_event.set()

    def stop_threadsafe(self, reason: str = "stopped") -> None:
        """:meth:`stop` from a thread other than the run's loop."""
        with self.lock:
            loop = self.loop
            if loop is None:  # not bound yet: bind() sees the reason
                self.reason = self.reason or reason
                return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(self.stop, reason)


SWITCH_INTERVAL_S = 0.0005


def new_loop_run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a fresh event loop (uvloop when available).

    While it runs, the interpreter's thread switch interval is half a
    millisecond instead of five: when the capture thread holds the GIL (turning
    rows into Arrow), the event loop gets it back within ~0.5 ms, where the
    default would delay every message due meanwhile by up to 5 ms.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        return uvloop.run(coro)
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def stop_on_signals(control: RunControl, *, enabled: bool) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run through ``control`` (main thread only)."""
    if not enabled:
        yield
        return
    import signal

    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, control.stop, sig.name)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:  # what was there before, not the default
                signal.signal(sig, handler)


def interrupted(exc: BaseException) -> bool:
    """True for the exceptions that mean "stopped", not "failed"."""
    return isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first StreambenchError in ``group`` (else its first leaf exception)."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack[:0] = exc.exceptions
        else:
            leaves.append(exc)
    return next((e for e in leaves if isinstance(e, StreambenchError)), leaves[0])


class Target(NamedTuple):
    """Where the run sends: the URL, and the built-in target's pid (None for others)."""

    url: str
    pid: int | None = None


@contextlib.asynccontextmanager
async def target_url(scenario: Scenario, writer: CaptureWriter) -> AsyncIterator[Target]:
    """The target; for ``url: embedded`` the built-in target in a child process.

    The built-in target's own fault rows (its ground truth) go to ``writer``
    when it stops.
    """
    if not scenario.target.embedded:
        yield Target(scenario.target.url)
        return
    from streambench.generate.protocols.base import embedded_url
    from streambench.generate.scale.limits import processes_for
    from streambench.target.embedded import EmbeddedTarget

    # as many processes as it takes to hold the connections with this machine's open-file
    # limit (docs/scale.md); the start-up wait grows with them
    processes = processes_for(scenario.load.connections, fill=0.85)
    target = EmbeddedTarget(server_knobs(scenario.target), processes=processes,
                            startup_timeout=15.0 + 5.0 * (processes - 1),
                            grpc=scenario.target.protocol == "grpc")
    try:
        async with target:
            yield Target(embedded_url(scenario, ws_url=target.ws_url, http_url=target.http_url,
                                      grpc_url=target.grpc_url), target.pid)
    finally:
        with contextlib.suppress(Exception):
            writer.submit_faults(target.faults())
