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
    intended time (its latency would read low, even negative).
    """
    while (delay := deadline_mono - time.monotonic_ns()) > 0:  # noqa: ASYNC110 (a clock)
        await asyncio.sleep(delay / 1e9)
