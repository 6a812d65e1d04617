"""The WebSocket echo: every text or binary frame goes back unchanged.

Two paths. With no fault knob set, :func:`_echo_plain` is the whole job: read a
frame, write it back, nothing parsed or decoded (text frames stay bytes). This
server is the default target, so that loop caps the default run's speed.

With knobs set, :class:`FaultyConnection` decides per message (drop, error,
disconnect) and, when replies are delayed or stalled, hands them to a
per-connection :class:`ReplyQueue`: replies are due at their own times and sent
by one sender task, so a slow reply never holds back a faster one behind it,
and replies due at the same time keep their arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools

import orjson
from aiohttp import WSMsgType, web

from streambench.target.knobs import ERROR_TEXT, Action, conn_of
from streambench.target.state import TargetState, cid_of

_DATA_TYPES = (WSMsgType.TEXT, WSMsgType.BINARY)
MAX_MESSAGE_BYTES = 16 << 20  # above the clients' largest max_message_bytes
CLOSE_INJECTED = 1011
TIMER_TICK_S = 0.001  # "internal error": what a crashing server's proxy would send


class ReplyQueue:
    """Replies waiting for their due time (server-relative seconds), sent in due order.

    Call :meth:`push` from the receive loop; :meth:`run` is the sender task and
    ends when cancelled or when the socket refuses a write.
    """

    def __init__(self, ws: web.WebSocketResponse, state: TargetState) -> None:
        self._ws = ws
        self._state = state
        self._heap: list[tuple[float, int, bytes, WSMsgType]] = []
        self._order = itertools.count()
        self._wake: asyncio.Future[None] | None = None

    def push(self, due: float, data: bytes, opcode: WSMsgType) -> None:
        heapq.heappush(self._heap, (due, next(self._order), data, opcode))
        wake = self._wake
        if wake is not None and not wake.done() and self._heap[0][0] == due:
            wake.set_result(None)  # the new reply is due before the one being waited for

    async def run(self) -> None:
        state, heap = self._state, self._heap
        while True:
            if heap and heap[0][0] <= state.now():
                _, _, data, opcode = heapq.heappop(heap)
                try:
                    await self._ws.send_frame(data, opcode)
                except ConnectionError:
                    return
                state.counters.replies += 1
                continue
            await self._sleep_until(heap[0][0] if heap else None)

    async def _sleep_until(self, due: float | None) -> None:
        loop = self._state.loop
        self._wake = wake = loop.create_future()
        timer = None
        if due is not None:
            # At least one timer tick: uvloop rounds timers to milliseconds, and a
            # timer firing early would only spin this loop until the reply is due.
            delay = max(due - self._state.now(), TIMER_TICK_S)
            timer = loop.call_later(delay, _set_done, wake)
        try:
            await wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def handle_websocket(request: web.Request, state: TargetState) -> web.WebSocketResponse:
    """Upgrade ``request`` and echo until the client (or an injected fault) closes."""
    ws = web.WebSocketResponse(compress=False, decode_text=False, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    state.counters.connections += 1
    state.sockets.add(ws)
    try:
        if state.plan.has_any:
            await FaultyConnection(ws, request, state).serve()
        else:
            await _echo_plain(ws, state)
    finally:
        state.sockets.discard(ws)
    return ws


async def _echo_plain(ws: web.WebSocketResponse, state: TargetState) -> None:
    counters = state.counters
    receive, send = ws.receive, ws.send_frame
    while True:
        msg = await receive()
        if msg.type not in _DATA_TYPES:
            return
        counters.messages += 1
        try:
            await send(msg.data, msg.type)
        except ConnectionError:
            return
        counters.replies += 1


class FaultyConnection:
    """One WebSocket connection served with the fault plan applied."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, state: TargetState):
        self.ws = ws
        self.transport = request.transport
        self.state = state
        self.conn: int | None = None  # learnt from the first cid, for ground-truth rows
        self.queue = ReplyQueue(ws, state) if state.plan.has_timing else None
        self._needs_conn = bool(state.plan.faults.disconnect_every)

    async def serve(self) -> None:
        live = self.state.live_connections
        live.add(self)
        sender = None
        if self.queue is not None:
            sender = asyncio.create_task(self.queue.run(), name="streambench.target.ws-sender")
        try:
            await self._receive_loop()
        finally:
            live.discard(self)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def _receive_loop(self) -> None:
        state, plan, counters = self.state, self.state.plan, self.state.counters
        while True:
            msg = await self.ws.receive()
            if msg.type not in _DATA_TYPES:
                return
            counters.messages += 1
            arrived = state.now()
            if self._needs_conn and self.conn is None:
                self.conn = _conn_prefix(msg.data)
            action = plan.action()
            data, opcode = msg.data, msg.type
            if action is Action.DROP:
                state.record(
                    "drop", start=arrived, end=arrived, cid=cid_of(data), detail="reply dropped"
                )
                continue
            if action is Action.DISCONNECT:
                self.abort(cid=cid_of(data), at=arrived)
                return
            if action is Action.ERROR:
                cid = cid_of(data)
                state.record("error", start=arrived, end=arrived, cid=cid, detail=ERROR_TEXT)
                data, opcode = orjson.dumps({"cid": cid, "error": ERROR_TEXT}), WSMsgType.TEXT
            if self.queue is not None:
                self.queue.push(plan.reply_at(arrived), data, opcode)
                continue
            try:
                await self.ws.send_frame(data, opcode)
            except ConnectionError:
                return
            counters.replies += 1

    def abort(self, *, cid: str | None, at: float) -> None:
        """Drop the TCP connection with no close frame (the client sees code 1006)."""
        self.state.record(
            "disconnect",
            start=at,
            end=at,
            cid=cid,
            conn=self.conn,
            detail="connection aborted (disconnect_rate)",
        )
        if self.transport is not None:
            self.transport.abort()

    async def close_periodic(self) -> None:
        """Close with code 1011 (the ``disconnect_every`` fault), recording it first."""
        now = self.state.now()
        self.state.record(
            "disconnect",
            start=now,
            end=now,
            conn=self.conn,
            detail="closed with 1011 (disconnect_every)",
        )
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await self.ws.close(code=CLOSE_INJECTED, message=b"injected disconnect")


def _conn_prefix(data: bytes) -> int | None:
    return conn_of(cid_of(data))
