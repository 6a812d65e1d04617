"""What happens to the bytes of one direction of one connection: sans-I/O.

A :class:`Shaper` takes what the proxy read from one side (``feed``) or that
side's end of stream (``close``) and answers with :data:`Item` s: bytes, or a
:class:`Close`, each with the monotonic time (ns) it is due on the other side.
The proxy only writes them out when due. Items come out in order with
non-decreasing due times: TCP never reorders a byte stream, and neither do we.

The faults active on the direction are :class:`Stage` s, applied in a fixed
order whatever order their windows opened in: ``close_after`` (it counts the
bytes offered), ``bandwidth``, ``slicer``, ``latency``. A dark direction
(``blackhole``) swallows everything, for good. ``slow_close`` only delays a
:class:`Close`. Each stage keeps :class:`Effect` counts for the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Close:
    """The end of the stream: ``eof`` passes a close on, ``reset`` an RST; ``cut`` closes
    the whole connection (``close_after``)."""

    how: Literal["eof", "cut", "reset"]


Item = tuple[int, "bytes | Close"]  # (due monotonic ns, what)


@dataclass(slots=True)
class Effect:
    """What one fault did to one direction: bytes and chunks touched, first and last times."""

    bytes: int = 0
    chunks: int = 0
    first_ns: int | None = None
    last_ns: int | None = None

    def touch(self, now: int, due: int, size: int) -> None:
        self.bytes += size
        self.chunks += 1
        if self.first_ns is None:
            self.first_ns = now
        self.last_ns = due if self.last_ns is None else max(self.last_ns, due)


@dataclass
class Stage:
    """One fault's transformation of a list of items (subclasses: one per kind)."""

    index: int  # the fault's position in network_faults
    window: int  # which of its windows
    effect: Effect = field(default_factory=Effect)
    order = 9  # position in the fixed stage order

    def apply(self, now: int, items: list[Item]) -> list[Item]:
        raise NotImplementedError


@dataclass
class CloseAfter(Stage):
    """Pass ``limit`` bytes, then cut the connection."""

    limit: int = 0
    passed: int = 0
    cut: bool = False
    order = 0

    def apply(self, now: int, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for due, what in items:
            if self.cut:
                break
            if isinstance(what, Close):
                out.append((due, what))
                continue
            room = self.limit - self.passed
            if len(what) < room:
                self.passed += len(what)
                out.append((due, what))
                continue
            if room > 0:
                out.append((due, what[:room]))
            self.passed, self.cut = self.limit, True
            out.append((due, Close("cut")))
            self.effect.touch(now, due, room)
        return out


@dataclass
class Bandwidth(Stage):
    """At most ``rate`` bytes/s: each piece is due when the link has carried it."""

    rate: float = 1.0
    free_at: float = 0.0  # ns: when the link has carried everything so far
    order = 1

    def apply(self, now: int, items: list[Item]) -> list[Item]:
        piece = max(1, int(self.rate / 100))  # 10 ms worth: delivery stays smooth
        out: list[Item] = []
        for due, what in items:
            if isinstance(what, Close):
                out.append((max(due, round(self.free_at)), what))
                continue
            for start in range(0, len(what), piece):
                chunk = what[start:start + piece]
                self.free_at = max(float(due), self.free_at) + len(chunk) * 1e9 / self.rate
                out.append((round(self.free_at), chunk))
                self.effect.touch(now, round(self.free_at), len(chunk))
        return out


@dataclass
class Slicer(Stage):
    """Cut each chunk into slices (sizes drawn by ``sizes``), ``delay_ns`` apart."""

    sizes: Callable[[int, int], list[int]] = lambda chunk, length: [length]
    delay_ns: int = 0
    chunk: int = 0
    next_ns: int = 0  # the earliest the next slice may go
    order = 2

    def apply(self, now: int, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for due, what in items:
            if isinstance(what, Close):
                out.append((max(due, self.next_ns), what))
                continue
            at, start = max(due, self.next_ns), 0
            for size in self.sizes(self.chunk, len(what)):
                out.append((at, what[start:start + size]))
                self.effect.touch(now, at, size)
                start += size
                at += self.delay_ns
            self.next_ns = at
            self.chunk += 1
        return out


@dataclass
class Latency(Stage):
    """Each chunk waits ``delays(chunk)`` ns (a close waits as long as the last chunk)."""

    delays: Callable[[int], int] = lambda chunk: 0
    chunk: int = 0
    last_delay: int = 0
    order = 3

    def apply(self, now: int, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for due, what in items:
            if not isinstance(what, Close):
                self.last_delay = self.delays(self.chunk)
                self.chunk += 1
                self.effect.touch(now, due + self.last_delay, len(what))
            out.append((due + self.last_delay, what))
        return out


class Shaper:
    """One direction of one connection: its active stages and what they make of the bytes."""

    def __init__(self) -> None:
        self.stages: list[Stage] = []
        self.dark: Effect | None = None  # set once the direction went dark (for good)
        self.slow: dict[int, tuple[int, Effect]] = {}  # slow_close faults: delay ns, effect
        self.last_due = 0

    @property
    def plain(self) -> bool:
        """True when bytes pass untouched (the proxy's fast path)."""
        return not self.stages and self.dark is None

    def add(self, stage: Stage) -> None:
        self.stages.append(stage)
        self.stages.sort(key=lambda s: s.order)

    def remove(self, index: int) -> Effect | None:
        """Take fault ``index`` off (its window closed) and return what it did; bytes
        already shaped keep their due times."""
        if index in self.slow:
            return self.slow.pop(index)[1]
        for stage in self.stages:
            if stage.index == index:
                self.stages.remove(stage)
                return stage.effect
        return None

    def go_dark(self) -> Effect:
        if self.dark is None:
            self.dark = Effect()
        return self.dark

    def feed(self, now: int, data: bytes) -> list[Item]:
        """The items for ``data`` read at ``now``."""
        if self.dark is not None:
            self.dark.touch(now, now, len(data))
            return []
        return self._ordered(self._staged(now, [(now, data)]))

    def close(self, now: int, how: Literal["eof", "cut", "reset"] = "eof") -> list[Item]:
        """The items for the end of the stream seen at ``now`` (nothing if dark)."""
        if self.dark is not None:
            return []
        due = now
        if self.slow:
            delay, effect = max(self.slow.values(), key=lambda slow: slow[0])
            due += delay
            effect.touch(now, due, 0)
        return self._ordered(self._staged(now, [(due, Close(how))]))

    def _staged(self, now: int, items: list[Item]) -> list[Item]:
        for stage in self.stages:
            items = stage.apply(now, items)
        return items

    def _ordered(self, items: list[Item]) -> list[Item]:
        out = []
        for due, what in items:
            self.last_due = max(self.last_due, due)
            out.append((self.last_due, what))
        return out
