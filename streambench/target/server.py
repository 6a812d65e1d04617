"""The built-in target: one aiohttp app, one port, WebSocket and HTTP echo.

Routes: ``GET /health``, ``GET /sse`` (see :mod:`streambench.target.http`), and
any other path, where a WebSocket upgrade is echoed frame by frame
(:mod:`streambench.target.ws`; clients use ``/echo``) and plain HTTP echoes the
body. Fault knobs come from :class:`~streambench.scenario.model.ServerFaults`
and every injected fault is reported to ``fault_sink`` as one ground-truth row
(format in :mod:`streambench.target.state`).

Clocks: stall windows and ``disconnect_every`` ticks count from server start.
Latency and jitter are one "delay" row covering the whole serving time, emitted
by :meth:`RunningServer.close` once its end is known.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import Any

from aiohttp import WSCloseCode, web

from streambench.scenario.model import ServerFaults
from streambench.target import broadcast, http, ws
from streambench.target.knobs import ServerFaultPlan, describe_delay
from streambench.target.state import FaultSink, TargetState, log

ACCEPT_BACKLOG = 4096
CLOSE_GRACE_S = 2.0  # how long close() lets clients answer a close frame


class RunningServer:
    """A started target. Read ``ws_url``/``http_url``; call :meth:`close` exactly once."""

    def __init__(self, *, runner: web.AppRunner, state: TargetState, host: str, port: int):
        self.host = host
        self.port = port
        self.ws_url = f"ws://{host}:{port}/echo"
        self.http_url = f"http://{host}:{port}/"
        self._runner = runner
        self._state = state
        self._clocks: list[asyncio.Task[None]] = []

    @property
    def stats(self) -> dict[str, Any]:
        """``{"connections", "messages", "replies", "faults": {kind: n}}`` so far."""
        return self._state.counters.snapshot()

    async def close(self) -> None:
        """Stop serving: close every socket, end the clocks, emit the closing rows."""
        state = self._state
        state.closing.set()
        for task in self._clocks:
            task.cancel()
        await asyncio.gather(*self._clocks, return_exceptions=True)
        await _close_sockets(state)
        await self._runner.cleanup()
        end = state.now()
        record_open_stall(state, end)
        if state.plan.has_delay:
            state.record("delay", start=0.0, end=end, detail=describe_delay(state.plan.faults))


async def start_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: ServerFaults = ServerFaults(),  # noqa: B008 -- frozen model, safe as a default
    fault_sink: FaultSink | None = None,
    reuse_port: bool = False,
) -> RunningServer:
    """Start the target on ``host:port`` (0: any free port) and return once it listens.

    Raises :class:`~streambench.errors.ConfigError` for knobs that cannot work
    and :class:`OSError` when the port cannot be bound.
    """
    plan = ServerFaultPlan(faults)
    state = TargetState(plan=plan, fault_sink=fault_sink)
    runner = web.AppRunner(
        _build_app(state), access_log=None, handle_signals=False, shutdown_timeout=CLOSE_GRACE_S
    )
    await runner.setup()
    # A deep accept queue: thousands of clients connecting at once (net.core.somaxconn
    # caps it); reuse_port lets the processes of `serve --processes N` share the port.
    site = web.TCPSite(runner, host, port, backlog=ACCEPT_BACKLOG, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound_port = _bound_port(runner, port)
    server = RunningServer(runner=runner, state=state, host=host, port=bound_port)
    server._clocks.extend(start_clocks(state))
    return server


def _build_app(state: TargetState) -> web.Application:
    app = web.Application(client_max_size=ws.MAX_MESSAGE_BYTES)

    async def any_path(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if request.path.startswith(broadcast.PATH):
                room = request.path[len(broadcast.PATH):]
                return await broadcast.handle_broadcast(request, state, room)
            return await ws.handle_websocket(request, state)
        return await http.handle_echo(request, state)

    app.router.add_get("/health", http.handle_health)
    app.router.add_get("/sse", partial(http.handle_sse, state=state))
    app.router.add_route("*", "/{tail:.*}", any_path)
    return app


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


def start_clocks(state: TargetState) -> list[asyncio.Task[None]]:
    tasks = []
    if state.plan.has_stalls:
        tasks.append(asyncio.create_task(_stall_clock(state), name="streambench.target.stalls"))
    if state.plan.faults.disconnect_every:
        tasks.append(
            asyncio.create_task(_disconnect_clock(state), name="streambench.target.disconnects")
        )
    return tasks


async def _stall_clock(state: TargetState) -> None:
    """Emit one "stall" row as each stall window ends (replies hold themselves).

    Windows are walked from the last one's end, not from "now", so a timer that
    fires a little early cannot report a window twice.
    """
    t = state.now()
    while True:
        window = state.plan.next_stall(t)
        assert window is not None
        await asyncio.sleep(max(0.0, window[1] - state.now()))
        state.record(
            "stall",
            start=window[0],
            end=window[1],
            detail=f"replies held {state.plan.faults.stall_for * 1000:g}ms",
        )
        t = window[1]


def record_open_stall(state: TargetState, end: float) -> None:
    """At close, a stall window already under way is recorded up to ``end``."""
    window = state.plan.stall_window(end)
    if window is not None:
        state.record("stall", start=window[0], end=end, detail="replies held until server close")


async def _disconnect_clock(state: TargetState) -> None:
    """At each ``disconnect_every`` tick, close every faulted connection once."""
    closing: set[asyncio.Task[None]] = set()
    tick = state.now()
    try:
        while (upcoming := state.plan.disconnect_tick(tick)) is not None:  # None: none at all
            tick = upcoming
            await asyncio.sleep(max(0.0, tick - state.now()))
            for conn in list(state.live_connections):
                task = asyncio.create_task(conn.close_periodic(), name="streambench.target.close")
                closing.add(task)
                task.add_done_callback(closing.discard)
    finally:
        for task in closing:
            task.cancel()


async def _close_sockets(state: TargetState) -> None:
    """Say goodbye (1001) to every open WebSocket, abort those that do not answer."""
    sockets = list(state.sockets)
    if not sockets:
        return
    log.info("closing %d websocket(s)", len(sockets))

    async def goodbye(sock: web.WebSocketResponse) -> None:
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(
                sock.close(code=WSCloseCode.GOING_AWAY, message=b"target closing"),
                CLOSE_GRACE_S,
            )

    await asyncio.gather(*(goodbye(sock) for sock in sockets), return_exceptions=True)
