"""Client-side fault decisions: pure, seeded, no clock and no I/O.

:class:`FaultPlan` answers, for a scenario's ``faults:`` list, the questions a
sender asks. Every answer is a function of the scenario seed, the connection,
the message number (``seq``) and the message's *intended* offset, so a run is
reproducible and the plan is tested without sockets:

* :meth:`FaultPlan.decide` -- what happens to message ``seq`` of connection
  ``conn``: a :class:`Decision` (drop, delay, duplicate, reorder, schema drift,
  malformed), or None when nothing does (the fast path).
* :meth:`FaultPlan.schedule` -- the connection's arrivals with any ``burst``
  arrivals merged in, in intended order.
* :meth:`FaultPlan.disconnects` -- when this connection is closed and for how
  long it stays down.
* :func:`mutate` -- the bytes a schema drift or malformed decision sends.

Draws are ``uniform(seed, stream, conn, seq)``: a splitmix64 hash, not a
stateful generator, so deciding message 7 does not depend on messages 1-6 and
adding a fault leaves the draws of the others untouched (each fault has its
own stream).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streambench.errors import ConfigError
from streambench.generate.engine.schedule import deterministic
from streambench.scenario.faults import (
    BurstFault,
    DelayFault,
    DisconnectFault,
    DropFault,
    DuplicateFault,
    Fault,
    MalformedFault,
    ReorderFault,
    SchemaDriftFault,
)
from streambench.scenario.model import Stage

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def uniform(seed: int, stream: int, conn: int, seq: int) -> float:
    """A reproducible draw in [0, 1) for (seed, stream, conn, seq)."""
    h = _mix(_mix(_mix(_mix(seed & _MASK) ^ stream) ^ conn) ^ seq)
    return (h >> 11) / 9007199254740992.0  # 2**53


@dataclass(frozen=True, slots=True)
class Decision:
    """What the faults do to one message. ``applied`` lists ``(kind, detail)`` per fault hit."""

    applied: tuple[tuple[str, str], ...]
    drop: bool = False
    delay_ns: int = 0
    copies: int = 0
    reorder: int = 0  # send after this many later messages of the connection
    drift: tuple[SchemaDriftFault, ...] = ()
    malformed: bool = False

    @property
    def changes_bytes(self) -> bool:
        return bool(self.drift) or self.malformed


class FaultPlan:
    """Seeded decisions for one run's ``faults:`` list.

    ``duration_s`` is the schedule's length (the end of windows without
    ``for``); ``connections`` is the total number of connections and ``conn``
    arguments are global connection indexes.
    """

    def __init__(self, faults: Sequence[Fault], *, seed: int, connections: int,
                 duration_s: float, cid_field: str | None = "cid",
                 seq_field: str | None = "seq") -> None:
        self.faults = tuple(faults)
        self.seed = seed
        self.connections = connections
        self.duration_s = duration_s
        indexed = list(enumerate(self.faults))
        self._message = [(i, f, *f.window_ns(duration_s)) for i, f in indexed
                         if not isinstance(f, DisconnectFault | BurstFault)]
        self._bursts = [(i, f) for i, f in indexed if isinstance(f, BurstFault)]
        self._disconnects = [(i, f) for i, f in indexed if isinstance(f, DisconnectFault)]
        _check_drift(self.faults, cid_field=cid_field, seq_field=seq_field)

    @property
    def empty(self) -> bool:
        return not self.faults

    @property
    def has_message_faults(self) -> bool:
        return bool(self._message)

    def decide(self, *, conn: int, seq: int, offset_ns: int) -> Decision | None:
        """The faults hitting message ``seq`` of ``conn`` (intended at ``offset_ns``), or None."""
        hits = [(i, f) for i, f, start, end in self._message
                if start <= offset_ns < end
                and (f.probability >= 1.0 or uniform(self.seed, 2 * i, conn, seq) < f.probability)]
        if not hits:
            return None
        return self._combine(hits, conn=conn, seq=seq)

    def _combine(self, hits: list[tuple[int, Any]], *, conn: int, seq: int) -> Decision:
        applied: list[tuple[str, str]] = []
        fields: dict[str, Any] = {"drop": False, "delay_ns": 0, "copies": 0, "reorder": 0,
                                  "malformed": False}
        drift: list[SchemaDriftFault] = []
        for i, fault in hits:
            if isinstance(fault, DropFault):
                fields["drop"] = True
                applied = [("drop", "message not sent")]  # nothing else happens to it
                break
            if isinstance(fault, DelayFault):
                extra = uniform(self.seed, 2 * i + 1, conn, seq) * fault.jitter
                delay_ns = round((fault.delay + extra) * 1e9)
                fields["delay_ns"] += delay_ns
                applied.append(("delay", f"held {delay_ns / 1e6:.3f}ms before sending"))
            elif isinstance(fault, DuplicateFault):
                fields["copies"] += fault.copies
                applied.append(("duplicate", f"sent {fault.copies} extra cop"
                                + ("y" if fault.copies == 1 else "ies")))
            elif isinstance(fault, ReorderFault):
                fields["reorder"] = max(fields["reorder"], fault.window)
                applied.append(("reorder", f"sent after the next {fault.window} message(s)"))
            elif isinstance(fault, SchemaDriftFault):
                drift.append(fault)
                applied.append(("schema_drift", describe_drift(fault)))
            elif isinstance(fault, MalformedFault):
                fields["malformed"] = True
                applied.append(("malformed", "closing brace removed (invalid JSON)"))
        return Decision(applied=tuple(applied), drift=tuple(drift), **fields)

    def schedule(self, base: Iterator[int], *, conn: int) -> Iterator[int]:
        """``base`` offsets with this connection's share of every burst merged in."""
        if not self._bursts:
            return base
        extra = [self.burst_offsets(i, conn=conn) for i, _ in self._bursts]
        return heapq.merge(base, *extra)

    def burst_offsets(self, index: int, *, conn: int) -> Iterator[int]:
        """The extra arrivals of burst ``index`` (position in ``faults``) for ``conn``."""
        fault = self.faults[index]
        assert isinstance(fault, BurstFault)
        start, end = fault.window_ns(self.duration_s)
        if end <= start:
            return iter(())
        stage = Stage(duration=(end - start) / 1e9, rate=fault.rate)
        return (start + offset for offset in deterministic(
            (stage,), conn=conn, connections=self.connections))

    def bursts(self) -> list[tuple[int, BurstFault, int, int]]:
        """``(index, fault, start_ns, end_ns)`` of every burst window."""
        return [(i, f, *f.window_ns(self.duration_s)) for i, f in self._bursts]

    def disconnects(self, conn: int) -> list[tuple[int, int, DisconnectFault]]:
        """``(at_ns, down_ns, fault)`` for every disconnect that picks ``conn``, by time."""
        picked = []
        for i, fault in self._disconnects:
            if fault.fraction >= 1.0 or uniform(self.seed, 2 * i, conn, 0) < fault.fraction:
                down = 0 if fault.for_ is None else round(fault.for_ * 1e9)
                picked.append((round(fault.at * 1e9), down, fault))
        return sorted(picked, key=lambda p: p[0])


def describe_drift(fault: SchemaDriftFault) -> str:
    parts = [f"rename {old}->{new}" for old, new in fault.rename.items()]
    parts += [f"remove {name}" for name in fault.remove]
    parts += [f"retype {name}->{kind}" for name, kind in fault.retype.items()]
    return ", ".join(parts)


def _check_drift(faults: Sequence[Fault], *, cid_field: str | None, seq_field: str | None
                 ) -> None:
    for index, fault in enumerate(faults):
        if not isinstance(fault, SchemaDriftFault):
            continue
        touched = set(fault.rename) | set(fault.rename.values()) | set(fault.remove) \
            | set(fault.retype)
        for name in (cid_field, seq_field):
            if name in touched:
                raise ConfigError(f"faults[{index}]: schema_drift cannot change {name!r}: "
                                  "replies are matched by it")


def mutate(data: bytes, decision: Decision) -> bytes:
    """The bytes to send for a decision that changes them (drift first, then malformed)."""
    if decision.drift:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            for fault in decision.drift:
                doc = drift_body(doc, fault)
            data = orjson.dumps(doc)
    if decision.malformed and data.endswith(b"}"):
        data = data[:-1]
    return data


def drift_body(doc: dict[str, Any], fault: SchemaDriftFault) -> dict[str, Any]:
    """``doc`` with the fault's renames, removals and retypes applied (key order kept)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in fault.remove:
            continue
        kind = fault.retype.get(key)
        out[fault.rename.get(key, key)] = value if kind is None else retype(value, kind)
    return out


def retype(value: Any, kind: str) -> Any:
    """``value`` as JSON type ``kind`` (string, int, float, bool, null, array, object)."""
    if kind == "string":
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if kind in ("int", "float"):
        number = _number(value)
        return int(number) if kind == "int" else float(number)
    if kind == "bool":
        return bool(value)
    if kind == "array":
        return value if isinstance(value, list) else [value]
    if kind == "object":
        return value if isinstance(value, dict) else {"value": value}
    return None


def _number(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return float(len(value))
    return float(len(value)) if isinstance(value, list | dict) else 0.0
