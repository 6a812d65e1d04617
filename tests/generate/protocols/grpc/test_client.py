"""gRPC runs against real grpcio servers on 127.0.0.1: every reply matched, statuses, resets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import polars as pl
import pytest
import trustme

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import TargetError, TargetUnreachable
from streambench.generate.protocols.grpc import codec as codec_module
from streambench.scenario.model import BUILTIN_PROTO, ServerFaults
from streambench.scenario.proto import compile_proto
from streambench.target.grpc_echo import RunningGrpcServer, start_grpc_server
from tests.helpers import free_port, scenario

Start = Callable[..., Any]


@pytest.fixture
async def echo() -> AsyncIterator[Start]:
    """``server = await echo(faults=..., tls=...)``: the built-in echo service, in this loop."""
    servers: list[RunningGrpcServer] = []

    async def start(**kwargs: Any) -> RunningGrpcServer:
        server = await start_grpc_server(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(grace=0)


def grpc_scenario(url: str, method: str, **target: Any) -> Any:
    return scenario(target={"protocol": "grpc", "url": url, "method": method, **target},
                    load={"connections": 2, "rate": 100, "duration": "1s", "timeout": "2s"})


def recv_rows(store: Store, run_id: str) -> pl.DataFrame:
    return store.events(run_id).filter(pl.col("kind") == "recv").collect()


async def test_unary_every_call_answered_with_its_latency(store: Store, echo: Start):
    server = await echo()
    result = await run_async(grpc_scenario(server.url, "Unary"), store=store)
    s = result.summary
    assert (s["sent"], s["received"], s["errors"], s["timeouts"]) == (100, 100, 0, 0)
    recv = recv_rows(store, result.run_id)
    assert recv["cid"].n_unique() == 100
    assert set(recv["status"]) == {"OK"}
    assert recv["latency_ms"].min() > 0
    assert set(recv["topic"]) == {"/streambench.echo.Echo/Unary"}
    assert recv["payload"][0].startswith('{"text":')  # the reply as JSON, redacted


async def test_server_stream_every_reply_matched_to_its_call(store: Store, echo: Start):
    server = await echo()
    sc = grpc_scenario(server.url, "Stream").model_copy(update={"message": scenario(
        message={"body": {"text": "{{sentence}}", "count": 4}}).message})
    result = await run_async(sc, store=store)
    s = result.summary
    assert (s["sent"], s["received"], s["errors"], s["timeouts"]) == (100, 400, 0, 0)
    recv = recv_rows(store, result.run_id)
    per_call = recv.group_by("cid").agg(pl.len(), pl.col("latency_ms").min().alias("first"),
                                        pl.col("latency_ms").max().alias("last"))
    assert per_call.height == 100
    assert set(per_call["len"]) == {4}
    assert (per_call["last"] >= per_call["first"]).all()  # each from the call's intended time


async def test_bidi_stream_replies_matched_by_cid(store: Store, echo: Start):
    server = await echo()
    result = await run_async(grpc_scenario(server.url, "Chat"), store=store)
    s = result.summary
    assert (s["sent"], s["received"], s["errors"], s["timeouts"]) == (100, 100, 0, 0)
    events = store.events(result.run_id).collect()
    kinds = dict(events.group_by("kind").len().iter_rows())
    assert kinds == {"connect": 2, "send": 100, "recv": 100, "disconnect": 2}
    assert set(events.filter(pl.col("kind") == "disconnect")["status"]) == {"OK"}
    recv = events.filter(pl.col("kind") == "recv")
    sends = events.filter(pl.col("kind") == "send").select("cid", "seq")
    assert recv.select("cid", "seq").sort("cid").equals(sends.sort("cid"))
    assert recv["latency_ms"].is_not_null().all()


async def test_a_runs_connections_encode_each_body_once(store: Store, echo: Start,
                                                      monkeypatch: pytest.MonkeyPatch):
    """One codec per run: at 100,000 connections, a body encoded per connection was
    100,000 encodings (and their memory) before the first message."""
    encoded: list[object] = []
    real = codec_module.encode_body

    def counting(method: Any, body: Any) -> bytes:
        encoded.append(body)
        return real(method, body)

    monkeypatch.setattr(codec_module, "encode_body", counting)
    server = await echo()
    sc = grpc_scenario(server.url, "Chat").model_copy(update={"message": scenario(
        message={"body": {"text": "{{name}}", "value": 1.5}, "pool": 8}).message})
    sc = sc.model_copy(update={"load": sc.load.model_copy(update={"connections": 4})})
    result = await run_async(sc, store=store)
    assert (result.summary["sent"], result.summary["received"]) == (100, 100)
    assert len(encoded) == 8  # each of the pool's 8 bodies, once for the 4 connections
    texts = store.events(result.run_id).filter(pl.col("kind") == "send").select(
        pl.col("payload").str.json_path_match("$.text")).collect().to_series()
    assert texts.n_unique() > 1  # the pool's bodies went out, not one of them


@pytest.mark.serial
async def test_a_stalling_server_shows_in_p99_and_max_not_in_a_slower_sender(store: Store):
    """The WebSocket test of the same name, over a gRPC bidi stream (the embedded target)."""
    sc = scenario(target={"protocol": "grpc", "url": "embedded", "method": "Chat",
                          "server": {"stall_every": "1.5s", "stall_for": "1s"}},
                  load={"connections": 4, "rate": 200, "duration": "4s", "timeout": "3s"})
    result = await run_async(sc, store=store)
    s = result.summary
    assert s["sent"] == 800
    assert s["schedule_lag_ms"]["max"] < 250  # a closed-model sender would lag by ~1000 ms
    assert s["latency_ms"]["max"] > 900
    assert s["latency_ms"]["p99"] > 800
    assert s["latency_ms"]["p50"] < 800
    stalls = store.faults(result.run_id).collect().filter(pl.col("kind") == "stall")
    assert stalls.height >= 2


async def test_error_statuses_and_deadlines_are_error_rows(store: Store, echo: Start):
    server = await echo(faults=ServerFaults(error_rate=0.2, latency=0.5, seed=1))
    sc = grpc_scenario(server.url, "Unary", deadline="50ms")
    result = await run_async(sc, store=store)
    s = result.summary
    assert s["sent"] == 100
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]
    errors = store.events(result.run_id).filter(pl.col("kind") == "error").collect()
    statuses = dict(errors.group_by("status").len().iter_rows())
    assert set(statuses) == {"INTERNAL", "DEADLINE_EXCEEDED"}
    assert 5 <= statuses["INTERNAL"] <= 40
    assert s["errors"] == 100  # every call failed: an injected error, or too slow
    assert "INTERNAL: injected error" in set(errors["error"])


async def test_stream_resets_are_error_rows_and_the_stream_reopens(store: Store, echo: Start):
    server = await echo(faults=ServerFaults(disconnect_rate=0.05, latency=0.02, seed=2))
    sc = grpc_scenario(server.url, "Chat", reconnect={"initial": "10ms"})
    result = await run_async(sc, store=store)
    s = result.summary
    assert s["sent"] + s["send_failures"] == 100
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]
    events = store.events(result.run_id).collect()
    resets = events.filter((pl.col("kind") == "disconnect") & (pl.col("status") == "UNAVAILABLE"))
    assert resets.height >= 2
    assert events.filter(pl.col("kind") == "connect").height >= 2 + resets.height
    lost = events.filter((pl.col("kind") == "error") & (pl.col("status") == "UNAVAILABLE"))
    assert lost.height >= resets.height  # at least the message that reset each stream
    assert s["received"] >= 60


async def test_metadata_carries_secrets_that_never_reach_the_store(
        store: Store, monkeypatch: pytest.MonkeyPatch):
    seen: list[dict[str, str]] = []
    rpc = compile_proto(str(BUILTIN_PROTO)).method(None, "Unary")

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        seen.append(dict(context.invocation_metadata()))
        return rpc.response(cid=request.cid, seq=request.seq)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(rpc.service, {
        "Unary": grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=rpc.request.FromString,
            response_serializer=rpc.response.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    monkeypatch.setenv("GRPC_TOKEN", "s3cr3t-token-value")
    try:
        sc = grpc_scenario(f"grpc://127.0.0.1:{port}", "Unary",
                           metadata={"authorization": "Bearer ${GRPC_TOKEN}", "x-team": "qa"})
        result = await run_async(sc, store=store)
    finally:
        await server.stop(None)
    assert result.summary["received"] == 100
    assert {m["authorization"] for m in seen} == {"Bearer s3cr3t-token-value"}
    assert {m["x-team"] for m in seen} == {"qa"}
    on_disk = b"".join(p.read_bytes() for p in Path(store.root).rglob("*")  # noqa: ASYNC240
                       if p.is_file())
    assert b"s3cr3t-token-value" not in on_disk
    assert store.manifest(result.run_id)["scenario"]["target"]["metadata"]["authorization"] \
        == "Bearer ${GRPC_TOKEN}"


async def test_tls_with_the_scenarios_ca(store: Store, echo: Start, tmp_path: Path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = await echo(tls=(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes()))
    assert server.url.startswith("grpcs://")
    sc = grpc_scenario(server.url, "Chat", tls={"ca": str(tmp_path / "ca.pem")})
    result = await run_async(sc, store=store)
    assert result.summary["received"] == 100


async def test_mutual_tls_with_the_scenarios_client_certificate(store: Store, echo: Start,
                                                                tmp_path: Path):
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("streambench-client@example.com")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    server = await echo(tls=(server_cert.private_key_pem.bytes(),
                             server_cert.cert_chain_pems[0].bytes()),
                        client_ca=ca.cert_pem.bytes())
    tls = {"ca": str(tmp_path / "ca.pem")}
    with pytest.raises(TargetError, match="no gRPC channel came up"):  # no certificate
        await run_async(grpc_scenario(server.url, "Unary", tls=tls, connect_timeout="1s"),
                        store=store)
    tls |= {"cert": str(tmp_path / "client.pem"), "key": str(tmp_path / "client.key")}
    result = await run_async(grpc_scenario(server.url, "Unary", tls=tls), store=store)
    assert result.summary["received"] == 100


async def test_an_unreachable_target_is_one_clear_error(store: Store):
    url = f"grpc://127.0.0.1:{free_port()}"
    with pytest.raises(TargetUnreachable, match=r"grpc://127\.0\.0\.1:\d+ is unreachable: "
                       "Connection refused"):
        await run_async(grpc_scenario(url, "Chat"), store=store)


async def test_client_faults_apply_to_a_stream(store: Store, echo: Start):
    server = await echo()
    sc = scenario(target={"protocol": "grpc", "url": server.url, "method": "Chat",
                          "reconnect": {"initial": "10ms"}},
                  load={"connections": 2, "rate": 100, "duration": "2s", "timeout": "1s"},
                  faults=[{"kind": "duplicate", "probability": 0.05, "copies": 1},
                          {"kind": "drop", "probability": 0.05},
                          {"kind": "disconnect", "at": "1s", "fraction": 1.0, "for": "200ms"}])
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    faults = events.filter(pl.col("kind") == "fault")
    by_kind = dict(faults.group_by("status").len().iter_rows())
    assert by_kind["disconnect"] == 2
    assert events.filter(pl.col("kind") == "connect").height == 4  # both reconnected
    sent_cids = set(events.filter(pl.col("kind") == "send")["cid"])
    dropped = set(faults.filter(pl.col("status") == "drop")["cid"])
    assert dropped
    assert not dropped & sent_cids
    copied = set(faults.filter(pl.col("status") == "duplicate")["cid"]) & sent_cids
    unmatched = set(events.filter(pl.col("status") == "unmatched")["cid"])
    assert unmatched <= copied  # each copy's echo matches nothing...
    assert len(unmatched) >= len(copied) - 1 > 0  # ...unless the cut at 1 s took it
    assert result.summary["received"] >= 150
    assert result.status == "completed"


async def test_malformed_and_drifted_requests(store: Store, echo: Start):
    """malformed: the encoded request cut short (the server cannot decode it); a drift
    that no longer fits the request type cannot be encoded: a send_failed row."""
    server = await echo()
    sc = scenario(target={"protocol": "grpc", "url": server.url, "method": "Unary"},
                  load={"connections": 1, "rate": 100, "duration": "1s", "timeout": "1s"},
                  faults=[{"kind": "malformed", "probability": 0.1},
                          {"kind": "schema_drift", "at": "500ms", "retype": {"text": "int"}}])
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    malformed = set(events.filter(pl.col("status") == "malformed")["cid"])
    drifted = events.filter(pl.col("status") == "send_failed")
    assert malformed
    assert drifted.height >= 40  # every message from 0.5 s on
    assert drifted["error"][0].startswith("cannot encode as EchoRequest: ")
    answered = set(events.filter(pl.col("kind") == "recv")["cid"])
    failed = events.filter((pl.col("kind") == "error") & pl.col("cid").is_in(list(malformed))
                           & (pl.col("status") != "send_failed"))
    assert not (malformed - set(drifted["cid"])) & answered  # no cut request was answered
    assert failed.height >= 1
    assert set(failed["status"]) <= {"INTERNAL", "UNKNOWN", "CANCELLED"}


async def test_a_reply_over_the_size_limit_is_an_error_row_not_a_crash(store: Store):
    """Issue 16 item 10 for gRPC: a reply larger than target.max_message_bytes is
    refused by the channel before it is buffered whole; the call is an error row."""
    rpc = compile_proto(str(BUILTIN_PROTO)).method(None, "Unary")

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return rpc.response(cid=request.cid, seq=request.seq, text="x" * 100_000)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(rpc.service, {
        "Unary": grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=rpc.request.FromString,
            response_serializer=rpc.response.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        sc = scenario(target={"protocol": "grpc", "url": f"grpc://127.0.0.1:{port}",
                              "method": "Unary", "max_message_bytes": 65536},
                      load={"connections": 1, "rate": 20, "duration": "500ms", "timeout": "2s"})
        result = await run_async(sc, store=store)
    finally:
        await server.stop(None)
    assert result.status == "completed"
    errors = store.events(result.run_id).filter(pl.col("kind") == "error").collect()
    assert errors.height == result.summary["sent"] == 10
    assert set(errors["status"]) == {"RESOURCE_EXHAUSTED"}
    assert result.summary["received"] == 0
