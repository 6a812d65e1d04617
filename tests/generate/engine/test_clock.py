"""sleep_until: a sleeper is never woken before its deadline, and a closed loop is freed.

Both ways of waking are tested: the loop's timerfd (Linux) and a loop timer per sleeper
(the portable way, forced here by telling the loop it has no alarm)."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import weakref

import pytest
import uvloop

from streambench.generate.engine import clock
from streambench.generate.engine.clock import sleep_until

RUNNERS = {"asyncio": asyncio.run, "uvloop": uvloop.run}
WAYS = ["timerfd", "timer per sleeper"]


def use(way: str) -> None:
    """Make the running loop wake its sleepers ``way``."""
    loop = asyncio.get_running_loop()
    if way == "timer per sleeper":
        clock.use_loop_timers(loop)
    else:
        assert isinstance(clock._alarm_for(loop), clock.Alarm)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("runner", RUNNERS.values(), ids=list(RUNNERS))
def test_every_sleeper_wakes_at_or_after_its_deadline_in_order(runner, way: str) -> None:
    async def main() -> tuple[list[int], list[int]]:
        use(way)
        start = time.monotonic_ns()
        # deadlines out of order and some equal, sub-millisecond parts included
        deadlines = [start + int(ms * 1_000_000) for ms in (30, 5, 20, 5, 1.3, 40, 12.7, 3)]
        early: list[int] = []
        woke: list[int] = []

        async def sleeper(deadline: int) -> None:
            await sleep_until(deadline)
            early.append(deadline - time.monotonic_ns())
            woke.append(deadline)

        await asyncio.gather(*(sleeper(d) for d in deadlines))
        return early, woke

    early, woke = runner(main())
    assert max(early) <= 0, f"a sleeper woke {max(early) / 1e3:.0f} µs before its deadline"
    assert woke == sorted(woke)


@pytest.mark.parametrize("way", WAYS)
def test_a_past_deadline_is_done_at_once_and_a_cancelled_sleeper_leaves_the_rest(way: str):
    async def main() -> tuple[bool, bool]:
        use(way)
        now = time.monotonic_ns()
        past = sleep_until(now - 1)
        cancelled = asyncio.ensure_future(sleep_until(now + 20_000_000))
        kept = sleep_until(now + 30_000_000)
        await asyncio.sleep(0)
        cancelled.cancel()
        await kept
        return past.done(), time.monotonic_ns() >= now + 30_000_000

    assert asyncio.run(main()) == (True, True)


@pytest.mark.parametrize("way", WAYS)
def test_a_loop_closed_with_sleepers_pending_is_freed(way: str) -> None:
    """A notebook running run after run keeps no old loop (nor its timerfd) through a
    pending sleep."""
    async def main() -> asyncio.AbstractEventLoop:
        use(way)
        loop = asyncio.get_running_loop()
        pending = [loop.create_task(_sleep(time.monotonic_ns() + s * 1_000_000_000))
                   for s in (10, 20)]  # still sleeping when the loop closes
        await asyncio.sleep(0)
        assert not any(task.done() for task in pending)
        return loop

    descriptors = len(os.listdir("/proc/self/fd"))
    for runner in [*RUNNERS.values()] * 5:
        ref = weakref.ref(runner(main()))
        gc.collect()
        assert ref() is None
    assert len(os.listdir("/proc/self/fd")) <= descriptors


async def _sleep(deadline: int) -> None:
    await sleep_until(deadline)
