"""Network fault decisions: pure, seeded, no clock and no sockets.

:class:`NetworkPlan` answers, for a scenario's ``network_faults:`` list, the
questions the proxy asks:

* :meth:`NetworkPlan.timeline` -- when each fault's windows open and close,
  as offsets from the schedule's start, in time order (lazily: a fault with
  ``every`` repeats until the run ends);
* :meth:`NetworkPlan.picks` -- whether fault ``index`` applies to the
  proxy's connection ``conn`` (its ``share``);
* :meth:`NetworkPlan.jitter_ns` and :meth:`NetworkPlan.slice_sizes` -- the
  seeded draws of a latency jitter or of a slicer, per chunk of bytes.

Draws use :func:`streambench.generate.faults.plan.uniform` (a hash of seed,
stream, connection and number, not a stateful generator), so adding a fault
leaves the draws of the others untouched. Connections are numbered by the
proxy in the order it accepted them (reconnections get new numbers).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from streambench.generate.faults.plan import uniform
from streambench.scenario.network import (
    LatencyNetFault,
    NetworkFault,
    RefuseFault,
    SlicerFault,
)

_STREAMS = 4  # draw streams per fault: pick, jitter, slice size
_BASE = 0x4E45_5400  # apart from the client plan's streams: no correlated picks


@dataclass(frozen=True, slots=True, order=True)
class Change:
    """A window of fault ``index`` opens (``opening``) or closes at ``offset_ns``.

    ``window`` numbers the windows of one fault from 0. Orders by time, with
    closes before opens at the same instant (a window that ends where the
    next begins does not overlap it).
    """

    offset_ns: int
    opening: bool
    index: int
    window: int


def windows(fault: NetworkFault) -> Iterator[tuple[int, int | None]]:
    """``(start_ns, end_ns)`` of each window of ``fault``; ``end_ns`` None: until the end.

    An instant fault (``reset``) has windows of length 0.
    """
    start = round(fault.at * 1e9)
    length = 0 if fault.instant else None if fault.for_ is None else round(fault.for_ * 1e9)
    if fault.every is None:
        yield start, None if length is None else start + length
        return
    period = round(fault.every * 1e9)
    assert length is not None  # validated: a repeating window has a length
    for number in itertools.count():
        begin = start + number * period
        yield begin, begin + length


class NetworkPlan:
    """Seeded decisions for one run's ``network_faults:`` list."""

    def __init__(self, faults: Sequence[NetworkFault], *, seed: int) -> None:
        self.faults = tuple(faults)
        self.seed = seed

    @property
    def empty(self) -> bool:
        return not self.faults

    def timeline(self) -> Iterator[Change]:
        """Every window opening and closing of every fault, in time order (maybe endless)."""
        return heapq.merge(*(self._changes(i) for i in range(len(self.faults))))

    def _changes(self, index: int) -> Iterator[Change]:
        for number, (start, end) in enumerate(windows(self.faults[index])):
            yield Change(start, True, index, number)
            if end is not None and end > start:  # an instant (reset) has no closing
                yield Change(end, False, index, number)

    def picks(self, index: int, conn: int) -> bool:
        """Whether fault ``index`` applies to connection ``conn`` (a refusal: to all)."""
        fault = self.faults[index]
        if isinstance(fault, RefuseFault) or fault.share >= 1.0:
            return True
        return uniform(self.seed, _BASE + _STREAMS * index, conn, 0) < fault.share

    def delay_ns(self, index: int, conn: int, chunk: int) -> int:
        """The latency of chunk number ``chunk`` of ``conn``: delay plus its jitter draw."""
        fault = self.faults[index]
        assert isinstance(fault, LatencyNetFault)
        extra = uniform(self.seed, _BASE + _STREAMS * index + 1, conn, chunk) * fault.jitter
        return round((fault.delay + extra) * 1e9)

    def slice_sizes(self, index: int, conn: int, chunk: int, length: int) -> list[int]:
        """How a slicer cuts ``length`` bytes of chunk ``chunk``: sizes summing to ``length``."""
        fault = self.faults[index]
        assert isinstance(fault, SlicerFault)
        sizes: list[int] = []
        left = length
        for number in itertools.count():
            if left <= 0:
                return sizes
            draw = uniform(self.seed, _BASE + _STREAMS * index + 2, conn,
                           chunk * 1_000_003 + number)
            size = fault.size + round((2 * draw - 1) * fault.variation)
            size = min(left, max(1, size))
            sizes.append(size)
            left -= size
        return sizes
