"""Set-up steps on every connect: send, await the expected answer, capture values.

A client runs :func:`run_steps` once its connection is open and before it
serves it (so again after every reconnect). Replies that arrive meanwhile are
offered to the awaited step first (:meth:`StepWaiter.offer`, called from the
client's receive path); what the step does not take goes on to the reply
matcher as usual. Each awaited step is a ``step`` row (status: its name,
latency from its send); a step that gets no answer in time fails the connect
(:class:`~streambench.errors.TargetError`): against a server that never
acknowledges there is nothing to measure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from streambench.capture.schema import Kind
from streambench.errors import TargetError
from streambench.generate.engine.conversation import Plan, PlanStep
from streambench.generate.engine.correlate import lookup
from streambench.generate.engine.frames import Framer
from streambench.generate.engine.replies import PAYLOAD_LIMIT


class StepWaiter:
    """The answer one step awaits; :meth:`offer` every reply while it waits."""

    def __init__(self, step: PlanStep, decode: Callable[[str], Any]) -> None:
        self.step = step
        self.decode = decode
        self.answer: asyncio.Future[tuple[Any, str, int]] = \
            asyncio.get_running_loop().create_future()

    def offer(self, text: str, now: int) -> bool:
        """True when ``text`` is the awaited answer (it is then consumed)."""
        expect = self.step.expect
        if self.answer.done() or expect is None:
            return False
        doc = self.decode(text)
        if not expect(doc, text):
            return False
        self.answer.set_result((doc, text, now))
        return True


async def run_steps(plan: Plan, framer: Framer, *, send: Callable[[bytes], None],
                    closed: asyncio.Future[Any], record: Callable[[tuple[Any, ...]], None],
                    wait_with: Callable[[StepWaiter | None], None], conn: int, topic: str,
                    url: str) -> None:
    """Run the plan's steps on one open connection; TargetError if one fails."""
    for step in plan.steps:
        data = None if step.send is None else framer.fill(step.send, 0)
        waiter = StepWaiter(step, plan.decode) if step.expect is not None else None
        wait_with(waiter)  # before sending: the answer may come at once
        sent = time.monotonic_ns()
        try:
            if data is not None:
                send(data)
            if waiter is None:
                # not the sent bytes: an auth step's token must never reach the store
                record((Kind.STEP, sent, conn, None, None, None, sent, len(data or b""), topic,
                        step.name, None, None))
                continue
            doc, text, at = await _answer(waiter, step, closed, url)
        finally:
            wait_with(None)
        framer.set({name: lookup(doc, path) for name, path in step.capture})
        since = sent if data is not None else None  # a step that only waits has no latency
        record((Kind.STEP, at, conn, None, None, since, since, len(text), topic, step.name,
                None, text[:PAYLOAD_LIMIT]))


async def _answer(waiter: StepWaiter, step: PlanStep, closed: asyncio.Future[Any],
                  url: str) -> tuple[Any, str, int]:
    timeout = step.timeout or 0.0
    try:
        async with asyncio.timeout(timeout):
            await asyncio.wait((waiter.answer, closed), return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        raise TargetError(f"target {url}: set-up step {step.name!r} got no matching answer "
                          f"in {timeout:g}s") from None
    if not waiter.answer.done():
        raise TargetError(f"target {url}: the connection closed during set-up step "
                          f"{step.name!r}")
    return waiter.answer.result()
