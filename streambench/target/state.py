"""Shared state of one running target: its clock, counters and fault recorder.

The WebSocket and HTTP handlers read the :class:`ServerFaultPlan` and report what they
inject through :class:`TargetState.record`, which turns a fault into one
ground-truth row::

    {"source": "target", "kind": "delay" | "stall" | "drop" | "error" | "disconnect",
     "start_ns": <epoch ns>, "end_ns": <epoch ns>, "conn": int | None,
     "cid": str | None, "detail": str}

and passes it to the ``fault_sink`` given to :func:`~streambench.target.server.start_server`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from streambench.logs import get_logger
from streambench.target.knobs import ServerFaultPlan, conn_of

FaultSink = Callable[[dict[str, Any]], None]
FAULT_KINDS = ("delay", "stall", "drop", "error", "disconnect")

log = get_logger("streambench.target")


def cid_of(data: bytes | str) -> str | None:
    """The ``"cid"`` field of a JSON object message, or None if it has none or is not JSON.

    Called only when a fault needs the cid: the plain echo path never parses.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    cid = obj.get("cid")
    return None if cid is None else str(cid)


class Counters:
    """Live totals; plain attributes so the per-message cost is one increment."""

    __slots__ = ("connections", "faults", "messages", "replies")

    def __init__(self) -> None:
        self.connections = 0
        self.messages = 0
        self.replies = 0
        self.faults = dict.fromkeys(FAULT_KINDS, 0)

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "messages": self.messages,
            "replies": self.replies,
            "faults": dict(self.faults),
        }


class TargetState:
    """What every handler of one server shares. Create it inside the running loop."""

    def __init__(self, *, plan: ServerFaultPlan, fault_sink: FaultSink | None) -> None:
        self.plan = plan
        self.counters = Counters()
        self.loop = asyncio.get_running_loop()
        # One instant read on both clocks: fault times are kept on the monotonic
        # clock and reported as epoch nanoseconds. Not loop.time(): uvloop's
        # clock ticks in whole milliseconds.
        self.start_mono = time.monotonic()
        self.start_epoch_ns = time.time_ns()
        self.closing = asyncio.Event()
        # Every open WebSocket (close() says goodbye to them), and the ones served
        # with faults on (disconnect_every closes those).
        self.sockets: set[Any] = set()
        self.live_connections: set[Any] = set()
        self.rooms: dict[str, set[Any]] = {}  # broadcast mode: room -> members' transports
        self._sink = fault_sink

    def now(self) -> float:
        """Seconds since server start on the monotonic clock."""
        return time.monotonic() - self.start_mono

    def epoch_ns(self, t: float) -> int:
        """Epoch nanoseconds of the server-relative time ``t``."""
        return self.start_epoch_ns + round(t * 1e9)

    def record(
        self,
        kind: str,
        *,
        start: float,
        end: float,
        cid: str | None = None,
        conn: int | None = None,
        detail: str = "",
    ) -> None:
        """Count one injected fault and hand its ground-truth row to the sink.

        ``start``/``end`` are server-relative seconds; ``conn`` defaults to the
        prefix of ``cid``. A failing sink is logged, never allowed to break serving.
        """
        self.counters.faults[kind] += 1
        if self._sink is None:
            return
        row = {
            "source": "target",
            "kind": kind,
            "start_ns": self.epoch_ns(start),
            "end_ns": self.epoch_ns(end),
            "conn": conn if conn is not None else conn_of(cid),
            "cid": cid,
            "detail": detail,
        }
        try:
            self._sink(row)
        except Exception:
            log.exception("fault sink failed on a %s row", kind)
