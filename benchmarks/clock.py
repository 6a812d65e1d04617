"""How late, and at what CPU cost, a sender wakes for its intended time.

    python benchmarks/clock.py [--sleeps 2000] [--senders 4]

``--senders`` tasks each sleep ``--sleeps / --senders`` times until a deadline
0.2-3 ms ahead (a connection's gap between messages at a few thousand
messages/s), as the engine's senders do with ``sleep_until``. Measured in the
same run for both ways of waking (streambench.generate.engine.clock): the
loop's ``timerfd`` (Linux, the default there) and a loop timer per sleeper
(the portable way, the baseline), on uvloop and on asyncio's own loop (a
notebook's). Prints lateness (wake-up minus deadline: never negative, else it
says so) and CPU per sleep.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import uvloop

from streambench.generate.engine import clock

WAYS = ("timerfd", "timer per sleeper")
LOOPS = {"uvloop": uvloop.run, "asyncio": asyncio.run}


async def measure(way: str, *, sleeps: int, senders: int) -> tuple[list[int], float]:
    """(lateness of every wake-up in ns, CPU seconds) for ``sleeps`` sleeps."""
    loop = asyncio.get_running_loop()
    if way == "timer per sleeper":
        clock.use_loop_timers(loop)
    late: list[int] = []

    async def sender(k: int) -> None:
        rng = random.Random(k)
        for _ in range(sleeps // senders):
            deadline = time.monotonic_ns() + rng.randrange(200_000, 3_000_000)
            await clock.sleep_until(deadline)
            late.append(time.monotonic_ns() - deadline)

    cpu = time.process_time()
    await asyncio.gather(*(sender(k) for k in range(senders)))
    return late, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleeps", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()
    print(f"{args.sleeps:,} sleeps of 0.2-3 ms by {args.senders} senders")
    for loop_name, run in LOOPS.items():
        for way in WAYS:
            late, cpu = run(measure(way, sleeps=args.sleeps, senders=args.senders))
            q = statistics.quantiles(late, n=100)
            early = sum(1 for x in late if x < 0)
            print(f"  {loop_name:<8} {way:<18} late p50 {q[49] / 1e3:7.1f} us  "
                  f"p99 {q[98] / 1e3:7.1f} us  CPU {cpu / len(late) * 1e6:6.1f} us a sleep"
                  + (f"  {early} WOKE EARLY" if early else ""))


if __name__ == "__main__":
    main()
