"""Ground truth of the network faults: one row per window that did something.

The proxy tells :class:`NetworkTruth` when a window opens and closes and what
each fault did to each connection (an :class:`~.shape.Effect`, reported when
the fault is lifted from the connection or the connection ends). A window's
row is emitted once the window closed and every effect in it has ended (a
connection that went dark ends its effect only when it is closed); rows still
open when the proxy stops end then.

A row spans what the fault did: for a window fault (latency, bandwidth,
slicer, blackhole, refuse) from the window's opening to the later of its
closing and the last byte it held back; for an event fault (reset,
slow_close, close_after) from its first to its last action. A window that
touched nothing (no picked connection, no bytes) leaves no row: nothing was
injected. A ``refuse`` window always has one: the proxy did not listen.
Rows use FAULT_SCHEMA's names with ``source`` ``network`` and times in epoch
ns; ``conn`` is None (the proxy's connection numbers are not the client's),
``detail`` says what happened and to how many connections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streambench.generate.faults.network.shape import Effect
from streambench.scenario.network import (
    BandwidthFault,
    BlackholeFault,
    CloseAfterFault,
    LatencyNetFault,
    NetworkFault,
    RefuseFault,
    SlicerFault,
    SlowCloseFault,
)

EVENT_KINDS = ("reset", "slow_close", "close_after")


def describe(fault: NetworkFault) -> str:
    """``latency 50ms +- 10ms downstream`` and the like."""
    if isinstance(fault, LatencyNetFault):
        text = f"latency {fault.delay * 1e3:g}ms" + (
            f" +- {fault.jitter * 1e3:g}ms" if fault.jitter else "")
    elif isinstance(fault, BandwidthFault):
        text = f"bandwidth {fault.rate:g} B/s"
    elif isinstance(fault, SlicerFault):
        text = (f"slicer {fault.size}+-{fault.variation} B every "
                f"{fault.delay * 1e3:g}ms")
    elif isinstance(fault, SlowCloseFault):
        text = f"slow_close {fault.delay * 1e3:g}ms"
    elif isinstance(fault, CloseAfterFault):
        text = f"close_after {fault.limit} B"
    elif isinstance(fault, BlackholeFault):
        text = "blackhole (half-open)"
    elif isinstance(fault, RefuseFault):
        return "refuse: new connections refused"
    else:
        text = "reset (RST)"
    return f"{text} {fault.direction}"


@dataclass
class _Window:
    opened_ns: int
    closed_ns: int | None = None
    pending: int = 0  # effects begun and not ended (dark connections)
    conns: set[int] = field(default_factory=set)
    bytes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


class NetworkTruth:
    """Collects what each window did; ``emit`` gets each finished row (a FAULT_SCHEMA dict)."""

    def __init__(self, faults: tuple[NetworkFault, ...], *, emit: Callable[[dict[str, Any]], None],
                 epoch_offset_ns: int) -> None:
        self.faults = faults
        self.emit = emit
        self.epoch_offset_ns = epoch_offset_ns  # epoch ns = monotonic ns + this
        self._windows: dict[tuple[int, int], _Window] = {}

    def opened(self, index: int, window: int, now: int) -> None:
        self._windows[(index, window)] = _Window(opened_ns=now)

    def closed(self, index: int, window: int, now: int) -> None:
        entry = self._windows.get((index, window))
        if entry is not None:
            entry.closed_ns = now
            self._maybe_emit(index, window)

    def begin(self, index: int, window: int, conn: int) -> None:
        """An effect that lasts until :meth:`end` (a connection went dark)."""
        entry = self._windows[(index, window)]
        entry.pending += 1
        entry.conns.add(conn)

    def end(self, index: int, window: int, conn: int, *, start: int, end: int,
            swallowed: int = 0) -> None:
        entry = self._windows.get((index, window))
        if entry is None:
            return
        entry.pending -= 1
        self._add(entry, conn, start, end, swallowed)
        self._maybe_emit(index, window)

    def effect(self, index: int, window: int, conn: int, effect: Effect) -> None:
        """What fault ``index`` did to connection ``conn`` in ``window`` (nothing: no-op)."""
        entry = self._windows.get((index, window))
        if entry is None or effect.first_ns is None or effect.last_ns is None:
            return
        self._add(entry, conn, effect.first_ns, effect.last_ns, effect.bytes)

    def instant(self, index: int, window: int, conn: int, now: int) -> None:
        """An action at an instant (a reset)."""
        entry = self._windows.get((index, window))
        if entry is not None:
            self._add(entry, conn, now, now, 0)

    @staticmethod
    def _add(entry: _Window, conn: int, start: int, end: int, size: int) -> None:
        entry.conns.add(conn)
        entry.bytes += size
        entry.first_ns = start if entry.first_ns is None else min(entry.first_ns, start)
        entry.last_ns = end if entry.last_ns is None else max(entry.last_ns, end)

    def finish(self, now: int) -> None:
        """The proxy stops: every open window closes, every pending effect ends, now."""
        for (index, window), entry in list(self._windows.items()):
            entry.closed_ns = entry.closed_ns or now
            if entry.pending:
                entry.pending = 0
                entry.last_ns = now if entry.last_ns is None else max(entry.last_ns, now)
                entry.first_ns = entry.first_ns or entry.opened_ns
            self._maybe_emit(index, window)

    def _maybe_emit(self, index: int, window: int) -> None:
        entry = self._windows[(index, window)]
        if entry.closed_ns is None or entry.pending:
            return
        del self._windows[(index, window)]
        row = self._row(self.faults[index], entry)
        if row is not None:
            self.emit(row)

    def _row(self, fault: NetworkFault, entry: _Window) -> dict[str, Any] | None:
        assert entry.closed_ns is not None
        if isinstance(fault, RefuseFault):
            start, end, detail = entry.opened_ns, entry.closed_ns, describe(fault)
        elif entry.first_ns is None or entry.last_ns is None:
            return None  # it touched nothing
        elif fault.kind in EVENT_KINDS:
            start, end = entry.first_ns, entry.last_ns
        else:
            start = min(entry.opened_ns, entry.first_ns)
            end = max(entry.closed_ns, entry.last_ns)
        if not isinstance(fault, RefuseFault):
            count = len(entry.conns)
            detail = (f"{describe(fault)} on {count} connection{'s' if count != 1 else ''}"
                      + (f", {entry.bytes} bytes" if entry.bytes else ""))
        offset = self.epoch_offset_ns
        return {"source": "network", "kind": fault.kind, "start_ns": start + offset,
                "end_ns": end + offset, "conn": None, "cid": None, "detail": detail}
