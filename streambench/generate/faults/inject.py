"""Carrying out a :class:`~streambench.generate.faults.plan.FaultPlan` on live connections.

The plan decides; the :class:`FaultInjector` acts and keeps the ground truth.
It wraps a client's send step: when a run has faults, the sender hands every
message to :meth:`FaultInjector.send` instead of sending it, and the injector
calls back into the client (:class:`Faultable`) to send, send a copy, or cut
the connection. Every fault it injects becomes

* an event row of kind ``fault`` (``status`` = the fault kind, ``error`` = the
  detail, ``seq``/``cid``/``intended`` of the message it hit), so it shows in
  the timeline beside the effects it caused, and
* a ground-truth row for ``<store>/faults/`` (source ``client``), returned by
  :meth:`FaultInjector.ground_truth` at the end of the run.

A delayed message is sent by a task of its own, so the sender keeps to the
schedule; its latency is still measured from its original intended time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from streambench.capture.schema import Kind
from streambench.capture.writer import Row
from streambench.generate.engine.clock import sleep_until
from streambench.generate.faults.plan import Decision, FaultPlan, mutate


class Faultable(Protocol):
    """What a client offers the injector (WebSocket, MQTT and HTTP clients all do)."""

    conn: int
    topic: str

    async def send_message(self, *, seq: int, cid: str, intended: int, data: bytes) -> None:
        """Send one message now and record it (send row, or not_connected/send_failed)."""

    async def send_copy(self, data: bytes) -> None:
        """Send ``data`` again without recording a send (a duplicate); never raises."""

    def abort(self) -> None:
        """Close the connection abruptly (no close handshake); the client reconnects."""


class FaultInjector:
    """Applies one run's fault plan; one injector is shared by all connections of a run."""

    def __init__(self, plan: FaultPlan, *, record: Callable[[Row], None],
                 conn_offset: int = 0) -> None:
        self.plan = plan
        self.record = record
        self.conn_offset = conn_offset
        self.start_mono = 0  # set by the runner when the schedule's zero is fixed
        self._truth: list[dict[str, Any]] = []
        self._held: dict[int, list[list[Any]]] = {}  # conn -> [[remaining, kwargs], ...]
        self._later: dict[int, set[asyncio.Task[None]]] = {}
        self._down_until: dict[int, int] = {}

    # -- per message -----------------------------------------------------------
    async def send(self, client: Faultable, *, seq: int, cid: str, intended: int,
                   data: bytes) -> None:
        """Send message ``seq`` with whatever faults the plan puts on it."""
        decision = None
        if self.plan.has_message_faults:
            decision = self.plan.decide(conn=self.conn_offset + client.conn, seq=seq,
                                        offset_ns=intended - self.start_mono)
        if decision is None:
            await client.send_message(seq=seq, cid=cid, intended=intended, data=data)
        else:
            await self._faulted(client, decision, seq=seq, cid=cid, intended=intended,
                                data=data)
        await self._release_held(client)

    async def _faulted(self, client: Faultable, decision: Decision, *, seq: int, cid: str,
                       intended: int, data: bytes) -> None:
        now = time.monotonic_ns()
        for kind, detail in decision.applied:
            end = now + decision.delay_ns if kind == "delay" else now
            self._fault(kind, detail, conn=client.conn, start=now, end=end, seq=seq, cid=cid,
                        intended=intended, topic=client.topic)
        if decision.drop:
            return
        if decision.changes_bytes:
            data = mutate(data, decision)
        message = {"seq": seq, "cid": cid, "intended": intended, "data": data}
        not_before = now + decision.delay_ns
        if decision.reorder:  # held; a delay on it still holds after its release
            self._held.setdefault(client.conn, []).append(
                [decision.reorder + 1, message, decision.copies, not_before])
            return
        await self._send_at(client, not_before, message, decision.copies)

    async def _send_at(self, client: Faultable, not_before: int, message: dict[str, Any],
                       copies: int) -> None:
        """Send now, or from a task of its own at ``not_before`` (the sender moves on)."""
        if not_before <= time.monotonic_ns():
            await self._send(client, message, copies)
            return
        task = asyncio.create_task(self._send_later(client, not_before, message, copies),
                                   name=f"faults.delay[{client.conn}:{message['seq']}]")
        tasks = self._later.setdefault(client.conn, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _send_later(self, client: Faultable, not_before: int, message: dict[str, Any],
                          copies: int) -> None:
        await sleep_until(not_before)
        await self._send(client, message, copies)

    @staticmethod
    async def _send(client: Faultable, message: dict[str, Any], copies: int) -> None:
        await client.send_message(**message)
        for _ in range(copies):
            await client.send_copy(message["data"])

    async def _release_held(self, client: Faultable) -> None:
        held = self._held.get(client.conn)
        if not held:
            return
        due = []
        for entry in held:
            entry[0] -= 1
            if entry[0] <= 0:
                due.append(entry)
        for entry in due:
            held.remove(entry)
            await self._send_at(client, entry[3], entry[1], entry[2])

    async def finish(self, client: Faultable) -> None:
        """At the end of a connection's schedule: send what is held, wait for delayed sends."""
        for _, message, copies, not_before in self._held.pop(client.conn, []):
            await self._send_at(client, not_before, message, copies)
        tasks = self._later.pop(client.conn, set())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- connection faults -----------------------------------------------------
    async def disconnect_loop(self, clients: Sequence[Faultable]) -> None:
        """Cut the connections the plan picks, at their times (a background task)."""
        events = sorted(((at, down, c) for c in clients
                         for at, down, _ in self.plan.disconnects(self.conn_offset + c.conn)),
                        key=lambda event: event[0])
        for at, down, client in events:
            await sleep_until(self.start_mono + at)
            now = time.monotonic_ns()
            self._down_until[client.conn] = now + down
            self._fault("disconnect", f"connection closed abruptly, down {down / 1e6:g}ms",
                        conn=client.conn, start=now, end=now + down, topic=client.topic)
            client.abort()

    async def hold_down(self, conn: int) -> None:
        """Wait out a disconnect fault's down time before the client reconnects."""
        await sleep_until(self._down_until.pop(conn, 0))

    def record_bursts(self, clients: Sequence[Faultable]) -> None:
        """One fault row per connection per burst window (call once the start is fixed)."""
        for _index, fault, start, end in self.plan.bursts():
            detail = f"+{fault.rate:g} msg/s over all connections"
            for client in clients:
                self._fault("burst", detail, conn=client.conn, start=self.start_mono + start,
                            end=self.start_mono + end, topic=client.topic, truth=False)
            if self.conn_offset:  # one row for the run: the first shard writes it
                continue
            self._truth.append({"source": "client", "kind": "burst",
                                "start_ns": self.start_mono + start,
                                "end_ns": self.start_mono + end, "conn": None, "cid": None,
                                "detail": detail})

    # -- ground truth ----------------------------------------------------------
    def _fault(self, kind: str, detail: str, *, conn: int, start: int, end: int,
               topic: str | None, seq: int | None = None, cid: str | None = None,
               intended: int | None = None, truth: bool = True) -> None:
        self.record((Kind.FAULT, start, conn, seq, cid, intended, None, None, topic, kind,
                     detail, None))
        if truth:
            self._truth.append({"source": "client", "kind": kind, "start_ns": start,
                                "end_ns": end, "conn": self.conn_offset + conn, "cid": cid,
                                "detail": detail})

    def ground_truth(self, *, offset_ns: int) -> list[dict[str, Any]]:
        """Every injected fault as a FAULT_SCHEMA dict (epoch ns: monotonic + ``offset_ns``)."""
        return [{**row, "start_ns": row["start_ns"] + offset_ns,
                 "end_ns": row["end_ns"] + offset_ns} for row in self._truth]
