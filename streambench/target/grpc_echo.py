"""The built-in gRPC echo service (grpcio asyncio): unary, server-streaming and bidi.

Service ``streambench.echo.Echo`` of ``grpc_echo.proto`` (beside this file):

* ``Unary``: one reply per request;
* ``Stream``: ``count`` replies per request (3 when 0), ``index`` 0, 1, ...;
* ``Chat``: a long-lived stream, one reply per message.

Every reply carries the request's ``text``, ``value``, ``cid`` and ``seq``. The
fault knobs are the built-in target's (:class:`~streambench.scenario.model.ServerFaults`,
decided by :class:`~streambench.target.knobs.ServerFaultPlan`): ``latency``,
``jitter`` and stalls hold replies (a bidi stream goes on reading meanwhile),
``drop_rate`` sends no reply, ``error_rate`` ends the call with status
``INTERNAL`` ("injected error"), ``disconnect_rate`` with ``UNAVAILABLE``
(a stream reset). ``disconnect_every`` does not apply. Every injected fault
is a ground-truth row for ``fault_sink``, as for the WebSocket target.

Run it alone with ``python -m streambench.target.grpc_echo --port 50051``, or
as part of ``streambench serve --grpc-port PORT`` (and so ``url: embedded``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from streambench.scenario.model import BUILTIN_PROTO, ServerFaults
from streambench.scenario.proto import Method, compile_proto
from streambench.target.knobs import ERROR_TEXT, Action, ServerFaultPlan, describe_delay
from streambench.target.server import record_open_stall, start_clocks
from streambench.target.state import FaultSink, TargetState

SERVICE = "streambench.echo.Echo"
Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_COUNT = 3
_END = object()


class EchoService:
    """The three handlers, sharing one fault plan and one ground-truth recorder."""

    def __init__(self, state: TargetState) -> None:
        proto = compile_proto(str(BUILTIN_PROTO))
        self.rpc: Method = proto.method(SERVICE, "Chat")
        self.reply_cls = self.rpc.response
        self.state = state
        self.plan = state.plan

    def handler(self) -> grpc.GenericRpcHandler:
        decode, encode = self.rpc.request.FromString, self.reply_cls.SerializeToString
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(
                self.unary, request_deserializer=decode, response_serializer=encode),
            "Stream": grpc.unary_stream_rpc_method_handler(
                self.stream, request_deserializer=decode, response_serializer=encode),
            "Chat": grpc.stream_stream_rpc_method_handler(
                self.chat, request_deserializer=decode, response_serializer=encode),
        })

    def reply(self, request: Any, index: int = 0) -> Any:
        return self.reply_cls(text=request.text, value=request.value, index=index,
                              cid=request.cid, seq=request.seq)

    # -- faults ----------------------------------------------------------------
    async def _decide(self, request: Any, context: Context) -> float | None:
        """The reply's due time (server seconds), None to drop it; aborts the call
        for an injected error or disconnect."""
        state = self.state
        state.counters.messages += 1
        arrived = state.now()
        action = self.plan.action()
        cid = request.cid or None
        if action is Action.DROP:
            state.record("drop", start=arrived, end=arrived, cid=cid, detail="reply dropped")
            return None
        if action is Action.ERROR:
            state.record("error", start=arrived, end=arrived, cid=cid, detail=ERROR_TEXT)
            await context.abort(grpc.StatusCode.INTERNAL, ERROR_TEXT)
        if action is Action.DISCONNECT:
            state.record("disconnect", start=arrived, end=arrived, cid=cid,
                         detail="stream reset (disconnect_rate)")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected disconnect")
        return self.plan.reply_at(arrived) if self.plan.has_timing else arrived

    async def _hold(self, due: float) -> None:
        delay = due - self.state.now()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- handlers --------------------------------------------------------------
    async def unary(self, request: Any, context: Context) -> Any:
        due = await self._decide(request, context)
        if due is None:  # dropped: no answer until the client gives up or we close
            await self.state.closing.wait()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "target closing")
        await self._hold(due)
        self.state.counters.replies += 1
        return self.reply(request)

    async def stream(self, request: Any, context: Context
                     ) -> AsyncIterator[Any]:
        for index in range(request.count or DEFAULT_COUNT):
            due = await self._decide(request, context)
            if due is None:
                continue
            await self._hold(due)
            self.state.counters.replies += 1
            yield self.reply(request, index)

    async def chat(self, requests: AsyncIterator[Any], context: Context
                   ) -> AsyncIterator[Any]:
        self.state.counters.connections += 1
        if not self.plan.has_any:  # the plain echo: nothing decided, nothing held
            async for request in requests:
                self.state.counters.messages += 1
                self.state.counters.replies += 1
                yield self.reply(request)
            return
        replies: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(self._read(requests, context, replies.put_nowait),
                                     name="streambench.target.grpc-chat-read")
        try:
            while (reply := await replies.get()) is not _END:
                if isinstance(reply, BaseException):
                    raise reply
                self.state.counters.replies += 1
                yield reply
        finally:
            reader.cancel()

    async def _read(self, requests: AsyncIterator[Any], context: Context,
                    put: Callable[[Any], None]) -> None:
        """Read a Chat stream; each reply is put when it is due (timers, not tasks)."""
        loop = asyncio.get_running_loop()
        held = 0
        drained = asyncio.Event()

        def release(reply: Any) -> None:
            nonlocal held
            put(reply)
            held -= 1
            if not held:
                drained.set()

        try:
            async for request in requests:
                due = await self._decide(request, context)
                if due is None:
                    continue
                delay = due - self.state.now()
                if delay <= 0:
                    put(self.reply(request))
                    continue
                held += 1
                drained.clear()
                loop.call_later(delay, release, self.reply(request))
            if held:
                await drained.wait()
            put(_END)
        except BaseException as exc:  # an abort (injected fault) or a broken stream
            put(exc if isinstance(exc, Exception) else _END)
            raise


class RunningGrpcServer:
    """A started echo service. Read ``url``; call :meth:`close` exactly once."""

    def __init__(self, server: grpc.aio.Server, state: TargetState, *, host: str, port: int,
                 tls: bool) -> None:
        self.server = server
        self.state = state
        self.host = host
        self.port = port
        self.url = f"{'grpcs' if tls else 'grpc'}://{host}:{port}"
        self._clocks: list[asyncio.Task[None]] = []

    @property
    def stats(self) -> dict[str, Any]:
        return self.state.counters.snapshot()

    async def close(self, grace: float = 1.0) -> None:
        """Stop serving (calls in flight get ``grace`` seconds), emit the closing rows."""
        state = self.state
        state.closing.set()
        for task in self._clocks:
            task.cancel()
        await asyncio.gather(*self._clocks, return_exceptions=True)
        await self.server.stop(grace)
        end = state.now()
        record_open_stall(state, end)
        if state.plan.has_delay:
            state.record("delay", start=0.0, end=end, detail=describe_delay(state.plan.faults))


async def start_grpc_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: ServerFaults = ServerFaults(),  # noqa: B008 -- frozen model, safe as a default
    fault_sink: FaultSink | None = None,
    tls: tuple[bytes, bytes] | None = None,
    client_ca: bytes | None = None,
) -> RunningGrpcServer:
    """Start the echo service on ``host:port`` (0: any free port); ``tls`` is
    ``(private key PEM, certificate chain PEM)`` for ``grpcs://``, ``client_ca`` (PEM)
    makes clients prove who they are with a certificate it signed (mutual TLS).

    Raises :class:`OSError` when the port cannot be bound.
    """
    state = TargetState(plan=ServerFaultPlan(faults), fault_sink=fault_sink)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((EchoService(state).handler(),))
    address = f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [tls], root_certificates=client_ca, require_client_auth=client_ca is not None)
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if not bound:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    running = RunningGrpcServer(server, state, host=host, port=bound, tls=tls is not None)
    running._clocks.extend(start_clocks(state))
    return running


async def _serve_forever(host: str, port: int) -> None:
    server = await start_grpc_server(host=host, port=port)
    print(f"serving {SERVICE} on {server.url}", file=sys.stderr, flush=True)
    try:
        await server.server.wait_for_termination()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m streambench.target.grpc_echo [--host H] [--port P]`` (no fault knobs)."""
    parser = argparse.ArgumentParser(prog="python -m streambench.target.grpc_echo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
