"""Waiting for a moment on the monotonic clock, for the engine and the fault proxy.

Kept apart from :mod:`.context` (which brings the capture schema and the
scenario model) so that the fault proxy's child process starts without them.
"""

from __future__ import annotations

import asyncio
import time


def sleep_until(deadline_mono: int) -> asyncio.Future[None]:
    """A future done at a monotonic deadline (``time.monotonic_ns()``), never before it.

    Await it like a sleep: ``await sleep_until(intended)``. uvloop rounds
    timers to whole milliseconds, so a timer can fire up to half a millisecond
    early; a message must never go out before its intended time (its latency
    would read low, even negative), so the timer's callback sets it again for
    what is left. A bare future and timer, not a coroutine: every idle
    connection's sender waits here, and a coroutine frame less is a few
    hundred bytes each.
    """
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    _wake(loop, waiter, deadline_mono)
    return waiter


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None],
          deadline_mono: int) -> None:
    if waiter.done():  # the sleeper was cancelled
        return
    delay = deadline_mono - time.monotonic_ns()
    if delay > 0:
        loop.call_later(delay / 1e9, _wake, loop, waiter, deadline_mono)
    else:
        waiter.set_result(None)
