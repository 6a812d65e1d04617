"""What surrounds a run in any process: its stop handle, signals, loop and target.

Shared by the single-process engine (:mod:`.run`) and the shards and driver
of a run over many processes (:mod:`streambench.generate.scale`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streambench.capture.writer import CaptureWriter
from streambench.errors import StreambenchError
from streambench.scenario.model import Scenario, server_knobs

T = TypeVar("T")


@dataclass
class RunControl:
    """A handle to stop a run from elsewhere (a signal, a dashboard's stop button)."""

    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        if self.reason is None:
            self.reason = reason
        self.stop_event.set()


def new_loop_run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a fresh event loop (uvloop when available)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


@contextlib.contextmanager
def stop_on_signals(control: RunControl, *, enabled: bool) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run through ``control`` (main thread only)."""
    if not enabled:
        yield
        return
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, control.stop, sig.name)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


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


@contextlib.asynccontextmanager
async def target_url(scenario: Scenario, writer: CaptureWriter) -> AsyncIterator[str]:
    """The target URL; for ``url: embedded`` the built-in target in a child process.

    The built-in target's own fault rows (its ground truth) go to ``writer``
    when it stops.
    """
    if not scenario.target.embedded:
        yield scenario.target.url
        return
    from streambench.generate.protocols.base import embedded_url
    from streambench.target.embedded import EmbeddedTarget

    target = EmbeddedTarget(server_knobs(scenario.target),
                            grpc=scenario.target.protocol == "grpc")
    try:
        async with target:
            yield embedded_url(scenario, ws_url=target.ws_url, http_url=target.http_url,
                               grpc_url=target.grpc_url)
    finally:
        with contextlib.suppress(Exception):
            writer.submit_faults(target.faults())
