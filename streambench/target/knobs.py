"""Fault decisions of the built-in target: pure, seeded, no I/O.

:class:`ServerFaultPlan` turns :class:`~streambench.scenario.model.ServerFaults` into
answers to three questions the server asks per message, all plain functions of
the seed, the message arrival order and the server clock:

* :meth:`ServerFaultPlan.action` -- echo, drop, error or disconnect? One draw from
  ``random.Random(seed)`` per message, and only when a rate is non-zero.
* :meth:`ServerFaultPlan.reply_at` -- when may the reply leave? ``latency`` plus a
  uniform draw in ``[0, jitter]`` (its own ``Random(seed + 1)`` so turning
  jitter on does not change which messages are dropped), then pushed to the end
  of the stall window it falls into.
* :meth:`ServerFaultPlan.stall_window` / :meth:`ServerFaultPlan.disconnect_tick` -- the
  periodic clocks, counted from server start.

Reproducibility: the same seed and the same message arrival order give the same
decisions. With one connection that order is the client's send order; with many
connections it is their interleaving at the server, so the rates hold but which
cid is hit may vary from run to run.

Times here are seconds on the server's monotonic clock, relative to server
start; the server converts to epoch nanoseconds when it reports a fault.
"""

from __future__ import annotations

import enum
import math
import random

from streambench.errors import ConfigError
from streambench.scenario.model import ServerFaults


class Action(enum.Enum):
    """What the server does with one incoming message instead of (or as) its echo."""

    ECHO = "echo"
    DROP = "drop"
    ERROR = "error"
    DISCONNECT = "disconnect"


ERROR_TEXT = "injected error"


def describe_delay(faults: ServerFaults) -> str:
    """The ``detail`` of the single "delay" row: ``"latency=20ms jitter=5ms"``."""
    return f"latency={_ms(faults.latency)} jitter={_ms(faults.jitter)}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


def conn_of(cid: str | None) -> int | None:
    """The connection index in a cid ``"<conn>-<seq>"``; None when it has no such prefix."""
    if not cid:
        return None
    head, sep, _ = cid.partition("-")
    if not sep:
        return None
    try:
        return int(head)
    except ValueError:
        return None


class ServerFaultPlan:
    """Seeded fault decisions for one server run; build one per server start.

    Raises :class:`~streambench.errors.ConfigError` when the stall knobs would
    stall forever (``stall_for >= stall_every``).
    """

    def __init__(self, faults: ServerFaults) -> None:
        self.faults = faults
        self._actions = random.Random(faults.seed)
        self._jitter = random.Random(faults.seed + 1)
        drop, error, disconnect = faults.drop_rate, faults.error_rate, faults.disconnect_rate
        # Cumulative thresholds for a single uniform draw per message.
        self._drop_below = drop
        self._error_below = drop + error
        self._disconnect_below = drop + error + disconnect
        self.has_actions = self._disconnect_below > 0.0
        self.has_delay = faults.latency > 0.0 or faults.jitter > 0.0
        self.has_stalls = bool(faults.stall_every) and faults.stall_for > 0.0
        self.has_timing = self.has_delay or self.has_stalls
        self.has_any = self.has_actions or self.has_timing or bool(faults.disconnect_every)
        if (
            self.has_stalls
            and faults.stall_every is not None
            and (faults.stall_for >= faults.stall_every)
        ):
            raise ConfigError(
                f"target.server.stall_for ({faults.stall_for:g}s) must be shorter than "
                f"stall_every ({faults.stall_every:g}s), or the target never answers"
            )

    def action(self) -> Action:
        """Decide the fate of the next message (consumes one draw when rates are set)."""
        if not self.has_actions:
            return Action.ECHO
        u = self._actions.random()
        if u < self._drop_below:
            return Action.DROP
        if u < self._error_below:
            return Action.ERROR
        if u < self._disconnect_below:
            return Action.DISCONNECT
        return Action.ECHO

    def reply_at(self, arrived: float) -> float:
        """When the reply to a message that arrived at ``arrived`` may be sent."""
        due = arrived + self.faults.latency
        if self.faults.jitter > 0.0:
            due += self._jitter.uniform(0.0, self.faults.jitter)
        if self.has_stalls:
            window = self.stall_window(due)
            if window is not None:
                due = window[1]
        return due

    def stall_window(self, t: float) -> tuple[float, float] | None:
        """The stall window ``(start, end)`` containing time ``t``, or None.

        Window ``k`` (k >= 1) is ``[k * stall_every, k * stall_every + stall_for)``:
        the first stall begins one period after server start.
        """
        every = self.faults.stall_every
        if not self.has_stalls or every is None or t < every:
            return None
        start = math.floor(t / every) * every
        end = start + self.faults.stall_for
        return (start, end) if t < end else None

    def next_stall(self, t: float) -> tuple[float, float] | None:
        """The first stall window that ends after ``t`` (current or upcoming), or None."""
        every = self.faults.stall_every
        if not self.has_stalls or every is None:
            return None
        current = self.stall_window(t)
        if current is not None:
            return current
        k = max(1, math.floor(t / every) + 1)
        return k * every, k * every + self.faults.stall_for

    def disconnect_tick(self, t: float) -> float | None:
        """The first periodic disconnect time strictly after ``t``, or None when off."""
        every = self.faults.disconnect_every
        if not every:
            return None
        return (math.floor(t / every) + 1) * every
