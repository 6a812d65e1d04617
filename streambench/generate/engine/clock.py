"""Waiting for a moment on the monotonic clock, for the engine and the fault proxy.

Kept apart from :mod:`.context` (which brings the capture schema and the
scenario model) so that the fault proxy's child process starts without them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

_ALARM = "_streambench_alarm"  # the loop's attribute holding its Alarm


def sleep_until(deadline_mono: int) -> asyncio.Future[None]:
    """A future done at a monotonic deadline (``time.monotonic_ns()``), never before it.

    Await it like a sleep: ``await sleep_until(intended)``. Every idle
    connection's sender waits here, so a sleeper costs only its future and
    an entry in its loop's :class:`Alarm` (one loop timer for all of them):
    no coroutine frame and no timer handle of its own.
    """
    loop = asyncio.get_running_loop()
    alarm: Alarm | None = getattr(loop, _ALARM, None)
    if alarm is None:
        alarm = Alarm()
        setattr(loop, _ALARM, alarm)  # goes with its loop (a cycle through its futures)
    return alarm.at(loop, deadline_mono)


class Alarm:
    """Many deadlines, one loop timer: the earliest pending deadline's.

    uvloop rounds timers to whole milliseconds, so its timer may fire up to
    half a millisecond early; a message must never go out before its intended
    time (its latency would read low, even negative). A deadline is only
    woken once the monotonic clock has reached it; the timer is armed again
    for what is left.
    """

    __slots__ = ("_armed_for", "_heap", "_order", "_timer")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties keep their order, futures are never compared
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0  # the deadline the timer is set for, while it is set

    def at(self, loop: asyncio.AbstractEventLoop, deadline_mono: int) -> asyncio.Future[None]:
        waiter = loop.create_future()
        now = time.monotonic_ns()
        if deadline_mono <= now:
            waiter.set_result(None)
            return waiter
        heapq.heappush(self._heap, (deadline_mono, next(self._order), waiter))
        if self._timer is None or deadline_mono < self._armed_for:
            self._arm(loop, deadline_mono, now)
        return waiter

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline_mono: int, now: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline_mono
        self._timer = loop.call_later((deadline_mono - now) / 1e9, self._fire)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        now = time.monotonic_ns()
        while heap and heap[0][0] <= now:
            waiter = heapq.heappop(heap)[2]
            if not waiter.done():  # a cancelled sleeper's entry is dropped here
                waiter.set_result(None)
        if heap:
            self._arm(asyncio.get_running_loop(), heap[0][0], now)

