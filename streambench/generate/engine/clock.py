"""Waiting for a moment on the monotonic clock, for the engine and the fault proxy.

Kept apart from :mod:`.context` (which brings the capture schema and the
scenario model) so that the fault proxy's child process starts without them.

A message must never go out before its intended time (its latency would read
low, even negative), and should go out as close after it as the machine allows
(lateness is latency too). uvloop's timers count whole milliseconds: they fire
up to half a millisecond early or late, and asyncio's wait rounds up to the
next millisecond. On Linux each event loop gets one ``timerfd`` (a kernel
timer with nanosecond deadlines on the same monotonic clock, read like a
socket) set :data:`EARLY_NS` before the earliest pending deadline; from there
the loop checks the clock once per iteration until the deadline is reached.
Measured in WebSocket runs of 1,000 and 3,000 messages/s: sends 41-66 us late
(p50), against 300-500 us with a loop timer per sleeper, the portable way used
elsewhere (or if the timerfd is unavailable), which also finishes early timers
by running loop iterations back to back (400,000 wake-ups for 9,000 messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import os
import sys
import time
import weakref
from typing import Any

_ALARM = "_streambench_alarm"  # the loop's attribute holding its Alarm (or False: none)


def sleep_until(deadline_mono: int) -> asyncio.Future[None]:
    """A future done at a monotonic deadline (``time.monotonic_ns()``), never before it.

    Await it like a sleep: ``await sleep_until(intended)``. A bare future, not a
    coroutine: every idle connection's sender waits here, and a coroutine frame
    less is a few hundred bytes each.
    """
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    alarm: Alarm | bool | None = getattr(loop, _ALARM, None)
    if alarm is None:
        alarm = _alarm_for(loop)
    if deadline_mono <= time.monotonic_ns():
        waiter.set_result(None)
    elif isinstance(alarm, Alarm):
        alarm.at(deadline_mono, waiter)
    else:
        _wake(loop, waiter, deadline_mono)
    return waiter


def use_loop_timers(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` wake its sleepers the portable way (a loop timer each), as where
    there is no timerfd: for tests and benchmarks that measure both ways."""
    setattr(loop, _ALARM, False)


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None],
          deadline_mono: int) -> None:
    """The portable way: a loop timer per sleeper, set again while it fires early."""
    if waiter.done():  # the sleeper was cancelled
        return
    delay = deadline_mono - time.monotonic_ns()
    if delay > 0:
        loop.call_later(delay / 1e9, _wake, loop, waiter, deadline_mono)
    else:
        waiter.set_result(None)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


EARLY_NS = 50_000  # how long before a deadline the kernel timer wakes the loop
_CLOCK_MONOTONIC = 1  # time.monotonic_ns()'s clock on Linux
_TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = 0o4000, 0o2000000, 1


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def _alarm_for(loop: asyncio.AbstractEventLoop) -> Alarm | bool:
    """The loop's alarm, made on first use; False where there can be none."""
    alarm: Alarm | bool = False
    if _LIBC is not None:
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd >= 0:
            try:
                alarm = Alarm(loop, fd, _LIBC.timerfd_settime)
            except (NotImplementedError, OSError):  # a loop without add_reader
                os.close(fd)
    setattr(loop, _ALARM, alarm)  # goes with its loop (a cycle through its futures)
    return alarm


class Alarm:
    """One loop's sleepers, woken by one kernel timer set for the earliest of them."""

    __slots__ = ("__weakref__", "_armed_for", "_fd", "_heap", "_loop", "_order", "_settime",
                 "_spec")

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, settime: Any) -> None:
        self._loop = loop
        self._fd = fd
        self._settime = settime  # libc's timerfd_settime
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties keep their order; futures are never compared
        self._armed_for = 0  # the deadline the timer is set for (0: not set)
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._fire)
        # The fd goes when the alarm does: with its loop, once that is closed and dropped.
        weakref.finalize(self, os.close, fd)

    def at(self, deadline_mono: int, waiter: asyncio.Future[None]) -> None:
        heapq.heappush(self._heap, (deadline_mono, next(self._order), waiter))
        if not self._armed_for or deadline_mono < self._armed_for:
            self._arm(deadline_mono, time.monotonic_ns())

    def _arm(self, deadline_mono: int, now: int) -> None:
        """Wake the loop :data:`EARLY_NS` before ``deadline_mono``, and from there on
        every loop iteration until it is reached (a kernel timer's wake-up takes tens
        of microseconds, more on a busy or virtual machine: lateness is latency)."""
        self._armed_for = deadline_mono
        if deadline_mono - now <= EARLY_NS:
            self._loop.call_soon(self._fire)
            return
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(deadline_mono - EARLY_NS, 1_000_000_000)
        self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)

    def _fire(self) -> None:
        with contextlib.suppress(BlockingIOError):  # not from the timer, or set again since
            os.read(self._fd, 8)
        heap = self._heap
        now = time.monotonic_ns()
        while heap and heap[0][0] <= now:
            waiter = heapq.heappop(heap)[2]
            if not waiter.done():  # a cancelled sleeper's entry is dropped here
                waiter.set_result(None)
        self._armed_for = 0
        if heap:
            self._arm(heap[0][0], now)
