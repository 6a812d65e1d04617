"""Waiting for a moment on the monotonic clock, for the engine and the fault proxy.

Kept apart from :mod:`.context` (which brings the capture schema and the
scenario model) so that the fault proxy's child process starts without them.
"""

from __future__ import annotations

import asyncio
import time


async def sleep_until(deadline_mono: int) -> None:
    """Sleep until a monotonic deadline, never waking before it.

    uvloop rounds timers to whole milliseconds, so one sleep can end up to
    half a millisecond early; a message must never go out before its
    intended time (its latency would read low, even negative). A bare
    future and timer rather than ``asyncio.sleep``: every idle connection's
    sender sleeps here, and a coroutine frame less is a few hundred bytes
    each.
    """
    loop = asyncio.get_running_loop()
    while (delay := deadline_mono - time.monotonic_ns()) > 0:
        waiter = loop.create_future()
        timer = loop.call_later(delay / 1e9, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
