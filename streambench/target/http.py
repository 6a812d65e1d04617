"""Plain HTTP on the target: echo, health and a Server-Sent Events stream.

* any method, any path: 200 with the request body and Content-Type echoed back;
* ``GET /health``: 200 ``{"ok": true}``;
* ``GET /sse?count=N&interval=50ms``: N events ``data: {"seq": i, "ts_ns": ...}``
  on a fixed schedule (event i is due at ``i * interval`` after the first), then
  the stream ends. ``count`` defaults to 100 and is capped at 100000.

The fault knobs apply to the echo as they do to WebSocket messages: the reply
waits for latency/jitter and stall windows; a dropped request is held without
an answer until the client gives up or the server closes (then 503); an error
reply is status 500 with ``{"cid": ..., "error": "injected error"}``; a
disconnect aborts the TCP connection with no response. ``disconnect_every`` is
a WebSocket knob and does not touch HTTP. ``/health`` and ``/sse`` are never
faulted: they are how a runner checks that the target is up.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web

from streambench.scenario.model import parse_duration
from streambench.target.knobs import ERROR_TEXT, Action
from streambench.target.state import TargetState, cid_of

SSE_DEFAULT_COUNT = 100
SSE_MAX_COUNT = 100_000
SSE_DEFAULT_INTERVAL = 0.05
_OCTETS = "application/octet-stream"


async def handle_health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def handle_echo(request: web.Request, state: TargetState) -> web.StreamResponse:
    """Echo the body of any plain HTTP request, with the fault plan applied."""
    body = await request.read()
    state.counters.messages += 1
    content_type = request.headers.get("Content-Type", _OCTETS)
    if state.plan.has_any:
        faulted = await _apply_faults(request, body, state)
        if faulted is not None:
            return faulted
    state.counters.replies += 1
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _apply_faults(
    request: web.Request, body: bytes, state: TargetState
) -> web.StreamResponse | None:
    """The response a fault replaces the echo with, or None to echo (after any delay)."""
    plan = state.plan
    arrived = state.now()
    action = plan.action()
    response = None
    if action is Action.DROP:
        state.record("drop", start=arrived, end=arrived, cid=cid_of(body), detail="reply dropped")
        await state.closing.wait()
        return web.Response(status=503, text="target closing")
    if action is Action.DISCONNECT:
        state.record(
            "disconnect",
            start=arrived,
            end=arrived,
            cid=cid_of(body),
            detail="connection aborted (disconnect_rate)",
        )
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the socket is gone
    if action is Action.ERROR:
        cid = cid_of(body)
        state.record("error", start=arrived, end=arrived, cid=cid, detail=ERROR_TEXT)
        response = web.json_response({"cid": cid, "error": ERROR_TEXT}, status=500)
    if plan.has_timing:
        await asyncio.sleep(max(0.0, plan.reply_at(arrived) - state.now()))
    if response is not None:
        state.counters.replies += 1
    return response


def _sse_params(request: web.Request) -> tuple[int, float]:
    query = request.query
    try:
        count = int(query.get("count", SSE_DEFAULT_COUNT))
    except ValueError:
        raise web.HTTPBadRequest(text=f"count must be an integer 0..{SSE_MAX_COUNT}") from None
    if not 0 <= count <= SSE_MAX_COUNT:
        raise web.HTTPBadRequest(text=f"count must be an integer 0..{SSE_MAX_COUNT}")
    try:
        interval = parse_duration(query.get("interval", SSE_DEFAULT_INTERVAL))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"interval: {exc}") from None
    return count, interval


async def handle_sse(request: web.Request, state: TargetState) -> web.StreamResponse:
    """Stream ``count`` events at ``interval``, then end the response."""
    count, interval = _sse_params(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    loop = state.loop
    first = loop.time()
    for seq in range(count):
        # Absolute due times, so a slow write does not drift the schedule.
        await asyncio.sleep(max(0.0, first + seq * interval - loop.time()))
        if state.closing.is_set():
            break
        event = orjson.dumps({"seq": seq, "ts_ns": time.time_ns()})
        try:
            await response.write(b"data: " + event + b"\n\n")
        except ConnectionError:
            return response
    await response.write_eof()
    return response
