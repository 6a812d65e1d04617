"""Planted secrets and PII against hostile MQTT, SSE, gRPC and HTTP peers: none of it kept.

tests/test_planted.py does WebSocket and HTTP (the lean engine) through the CLI,
and renders a report; this module does the other protocols, and HTTP through
aiohttp, with the Python API (no interpreter start-up: seconds each) and the
same plants (tests/planted.py). Each hostile peer, started here on 127.0.0.1,
echoes what it was given in every column it controls: whole requests, cids and
topics it chose, status details and reason phrases echoing request headers or
metadata, JSON ``error`` fields, non-JSON, truncated and deep replies, bytes
after the JSON, invalid UTF-8, keys inside allowed objects, the request inside
a reply's cid. Then every byte under the store and every log record (the
``streambench`` loggers at debug level, anything else at warning, which is what
Python prints by default) are searched. A rendered report is drawn from the
store searched here; tests/test_planted.py renders one (papermill costs half a
minute).

Only the secrets a scenario references can be known to streambench (MQTT has
no headers: its scenario references two), so each test forbids those, the
person and the corpus.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import grpc
import pytest
from aiohttp import web

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.logs import JsonFormatter, RunContextFilter, ScrubFilter
from streambench.scenario.load import load_scenario
from streambench.scenario.proto import compile_proto
from tests.helpers import store_text
from tests.mosquitto import Mosquitto
from tests.planted import (
    BODY,
    CORPUS,
    PERSON,
    POLICY,
    SECRETS,
    compact,
    hostile_text,
    serving,
    start_hostile_http,
)

DEEP = json.loads("[" * 300 + "]" * 300)
PERSONAL = [*PERSON.values(), *CORPUS]


@pytest.fixture(autouse=True)
def plants(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line of the test as ``--log-level debug --log-format json`` writes it,
    and third-party warnings as Python's default handler would print them."""
    out = io.StringIO()
    ours = logging.StreamHandler(out)
    ours.setFormatter(JsonFormatter())
    ours.addFilter(RunContextFilter())
    ours.addFilter(ScrubFilter())
    theirs = logging.StreamHandler(out)
    theirs.setLevel(logging.WARNING)
    sb, root = logging.getLogger("streambench"), logging.getLogger()
    level, propagate = sb.level, sb.propagate
    sb.addHandler(ours)
    sb.setLevel(logging.DEBUG)
    sb.propagate = False
    root.addHandler(theirs)
    try:
        yield out
    finally:
        sb.removeHandler(ours)
        root.removeHandler(theirs)
        sb.setLevel(level)
        sb.propagate = propagate


def scenario_file(path: Path, target: dict[str, Any], body: Any = BODY, **extra: Any) -> Path:
    doc = {"name": path.stem, "target": target,
           "load": {"connections": 2, "rate": 40, "duration": "1s", "timeout": "300ms"},
           "message": {"body": body}, "capture": {"redaction": POLICY}, **extra}
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def assert_nothing_planted(*, store: Store, logs: str, forbidden: list[str],
                           evidence: tuple[str, ...]) -> None:
    """The whole store and the logs hold none of ``forbidden``; ``evidence`` shows the
    peer did its worst (each is found in the store)."""
    stored = store_text(Path(store.root))
    for sign in evidence:
        assert sign in stored, sign
    found = {(where, value) for where, text in {"store": stored, "logs": logs}.items()
             for value in forbidden if value in text}
    assert not found


# -- MQTT: a real broker and a hostile device behind it --------------------------------

TOPIC_SAFE = [value for value in CORPUS if not set(value) & set("+#/\0")]


def mqtt_reply(n: int, conn: str, text: str) -> tuple[str, bytes]:
    """The ``n``-th answer to request ``text`` from connection ``conn``: (topic, payload)."""
    doc = json.loads(text) if text.endswith("}") else {"cid": "?"}
    topic = f"plant/rep/{conn}"
    credentials = {"username": SECRETS["SB_PLANT_QS"], "password": SECRETS["SB_PLANT_PW"]}
    replies: list[tuple[str, str | bytes]] = [
        (topic, text),
        (topic, compact({**doc, "cid": CORPUS[n % len(CORPUS)]})),
        (topic, hostile_text(credentials)),
        (topic, text + " trailing " + CORPUS[2]),
        (topic, text[: len(text) // 2]),
        (topic, compact({"cid": doc.get("cid"), "error": text + hostile_text(credentials)})),
        (f"{topic}/{TOPIC_SAFE[n % len(TOPIC_SAFE)]}", text),  # a topic the device chose
        (topic, compact({**doc, "text": hostile_text(credentials),
                         "notes": {CORPUS[3]: SECRETS["SB_PLANT_PW"]}})),
        (topic, b"\xff\xfe" + hostile_text(credentials).encode()),  # not UTF-8
        (topic, compact({"cid": doc.get("cid"), "text": DEEP})),
    ]
    topic, payload = replies[n % len(replies)]
    return topic, payload if isinstance(payload, bytes) else payload.encode()


async def hostile_device(port: int, subscribed: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="hostile-device") as client:
        await client.subscribe("plant/req/+", qos=1)
        subscribed.set()
        count = itertools.count()
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            conn = str(message.topic).rsplit("/", 1)[1]
            topic, payload = mqtt_reply(next(count), conn,
                                        message.payload.decode("utf-8", "replace"))
            await client.publish(topic, payload, qos=1)


@pytest.mark.timeout(60)
async def test_mqtt_hostile_device(tmp_path: Path, logs: io.StringIO):
    with Mosquitto(tmp_path / "broker") as broker:
        subscribed = asyncio.Event()
        device = asyncio.create_task(hostile_device(broker.port, subscribed))
        try:
            await asyncio.wait_for(subscribed.wait(), 10)
            sc = load_scenario(scenario_file(tmp_path / "mqtt.yaml", {
                "protocol": "mqtt", "url": broker.url, "publish": "plant/req/{conn}",
                "subscribe": "plant/rep/{conn}/#", "username": "${SB_PLANT_QS}",
                "password": "${SB_PLANT_PW}"}, faults=[{"kind": "malformed",
                                                         "probability": 0.2}]))
            store = Store(tmp_path / "st")
            result = await run_async(sc, store=store)
        finally:
            device.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await device
    assert result.status == "completed"
    assert result.summary["received"] > 0
    assert_nothing_planted(
        store=store, logs=logs.getvalue(),
        forbidden=[SECRETS["SB_PLANT_QS"], SECRETS["SB_PLANT_PW"], *PERSONAL],
        evidence=("<text:", "<invalid-json:", "<deep-json:", "<email>", "<redacted>", "h1:"))


# -- SSE: a stream that pushes back what it was sent -------------------------------------

def sse_event(data: str | bytes, *, event_id: str | None = None, name: str | None = None
              ) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    lines = [b"data: " + line for line in raw.split(b"\n")]
    if event_id is not None:
        lines.insert(0, f"id: {event_id}".encode())
    if name is not None:
        lines.insert(0, f"event: {name}".encode())
    return b"\n".join(lines) + b"\n\n"


def sse_events(request: web.Request) -> list[bytes]:
    headers = dict(request.headers)
    echo = compact({**BODY, "url": str(request.url), "headers": headers})
    return [
        sse_event(echo, event_id=CORPUS[0]),  # an id (the cid column) the server chose
        sse_event(compact({"text": hostile_text(headers),
                           "notes": {CORPUS[3]: headers.get("X-Api-Key", "")}}),
                  name=f"denied {headers.get('X-Api-Key')} for {CORPUS[1]}"),  # the topic
        sse_event(hostile_text(headers)),  # not JSON
        sse_event(echo + " trailing " + CORPUS[2]),
        sse_event(echo[: len(echo) // 2]),
        sse_event(compact({"error": echo + hostile_text(headers)})),
        sse_event(b"\xff\xfe" + hostile_text(headers).encode()),
        sse_event(compact({"text": DEEP})),
    ]


async def sse_handler(request: web.Request, attempt: int) -> web.StreamResponse:
    headers = dict(request.headers)
    if attempt % 3 == 2:  # a refused reopen: a reason phrase and a page echoing the request
        page = f"<html><pre>{hostile_text(headers)}\n{request.url}</pre></html>"
        return web.Response(status=403, text=page, content_type="text/html",
                            reason=f"Denied {headers.get('X-Api-Key')} for {CORPUS[0]}")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        for event in sse_events(request):
            await response.write(event)
    return response  # the stream ends: the client reopens it


@pytest.fixture
async def sse_url() -> AsyncIterator[str]:
    attempts = itertools.count()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await sse_handler(request, next(attempts))

    app = web.Application()
    app.router.add_get("/events", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield f"http://bot:${{SB_PLANT_PW}}@127.0.0.1:{port}/events?session=${{SB_PLANT_QS}}"
    await runner.cleanup()


@pytest.mark.timeout(60)
async def test_sse_hostile_stream(tmp_path: Path, sse_url: str, logs: io.StringIO):
    sc = load_scenario(scenario_file(tmp_path / "sse.yaml", {
        "protocol": "sse", "url": sse_url, "headers": {"X-Api-Key": "${SB_PLANT_KEY}",
                                                        "X-Token": "${SB_PLANT_TOKEN}"},
        "reconnect": {"initial": "10ms", "max": "50ms"}}))
    store = Store(tmp_path / "st")
    result = await run_async(sc, store=store)
    assert result.status == "completed"
    assert_nothing_planted(
        store=store, logs=logs.getvalue(), forbidden=[*SECRETS.values(), *PERSONAL],
        evidence=("connect_failed", "<text:", "<invalid-json:", "<deep-json:", "<email>",
                  "<redacted>"))


# -- gRPC: a service that answers with what it was sent ---------------------------------

PROTO = """
syntax = "proto3";
package plant;
message Person {
  string user_id = 1;
  string name = 2;
  string city = 3;
  string email = 4;
  string text = 5;
  map<string, string> notes = 6;
  string error = 7;
  string cid = 14;
  int64 seq = 15;
}
service Plant {
  rpc Unary(Person) returns (Person);
  rpc Chat(stream Person) returns (stream Person);
}
"""


def grpc_reply(n: int, request: Any, metadata: list[tuple[str, str]], rpc: Any) -> Any:
    """The ``n``-th answer: a reply message, or the (code, details) of a failed call."""
    echo = rpc.request.FromString(request.SerializeToString())
    asked = compact({"name": request.name, "city": request.city, "user_id": request.user_id,
                     "email": request.email, "metadata": dict(metadata)})
    answers = [
        lambda: rpc.response.FromString(echo.SerializeToString()),
        lambda: rpc.response(cid=CORPUS[n % len(CORPUS)], name=request.name),
        lambda: (grpc.StatusCode.INTERNAL, hostile_text(metadata)),
        lambda: rpc.response(cid=request.cid, seq=request.seq, text=hostile_text(metadata),
                             notes={CORPUS[3]: SECRETS["SB_PLANT_KEY"]}),
        lambda: (grpc.StatusCode.PERMISSION_DENIED, asked),
        lambda: rpc.response(cid=request.cid, seq=request.seq, error=asked),
        lambda: rpc.response(cid=asked, seq=request.seq),
    ]
    return answers[n % len(answers)]()


@contextlib.asynccontextmanager
async def hostile_service(proto: Path) -> AsyncIterator[str]:
    compiled = compile_proto(str(proto))
    rpc = compiled.method(None, "Unary")
    count = itertools.count()

    def metadata_of(context: grpc.aio.ServicerContext) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in context.invocation_metadata() or ()]

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        answer = grpc_reply(next(count), request, metadata_of(context), rpc)
        if isinstance(answer, tuple):
            await context.abort(*answer)
        return answer

    async def chat(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[Any]:
        async for request in requests:  # a failed call ends the stream: it is reopened
            answer = grpc_reply(next(count), request, metadata_of(context), rpc)
            if isinstance(answer, tuple):
                await context.abort(*answer)
            yield answer

    codec = {"request_deserializer": rpc.request.FromString,
             "response_serializer": rpc.response.SerializeToString}
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(rpc.service, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **codec),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, **codec)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def grpc_run(tmp_path: Path, store: Store, method: str) -> Any:
    (tmp_path / "plant.proto").write_text(PROTO)
    async with hostile_service(tmp_path / "plant.proto") as url:
        sc = load_scenario(scenario_file(tmp_path / "grpc.yaml", {
            "protocol": "grpc", "url": url, "proto": "plant.proto", "method": method,
            "metadata": {"authorization": "Bearer ${SB_PLANT_TOKEN}",
                         "x-api-key": "${SB_PLANT_KEY}", "x-session": "${SB_PLANT_QS}",
                         "x-password": "${SB_PLANT_PW}"},
            "reconnect": {"initial": "10ms", "max": "50ms"}}))
        return await run_async(sc, store=store)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["Unary", "Chat"])
def test_grpc_hostile_service(tmp_path: Path, logs: io.StringIO, method: str):
    store = Store(tmp_path / "st")
    result = asyncio.run(grpc_run(tmp_path, store, method))
    assert result.status == "completed"
    assert_nothing_planted(
        store=store, logs=logs.getvalue(), forbidden=[*SECRETS.values(), *PERSONAL],
        evidence=("INTERNAL", "PERMISSION_DENIED", "<email>", "<redacted>", "h1:"))


# -- HTTP through the aiohttp engine (tests/test_planted.py runs the lean one) ------------

@pytest.mark.timeout(60)
async def test_http_hostile_server_through_aiohttp(tmp_path: Path, logs: io.StringIO):
    with serving(start_hostile_http, aiohttp=True) as port:
        sc = load_scenario(scenario_file(tmp_path / "http.yaml", {
            "protocol": "http", "http_engine": "aiohttp",
            "url": f"http://127.0.0.1:{port}/echo?session=${{SB_PLANT_QS}}",
            "headers": {"Authorization": "Bearer ${SB_PLANT_TOKEN}",
                        "X-Api-Key": "${SB_PLANT_KEY}"}}))
        store = Store(tmp_path / "st")
        result = await run_async(sc, store=store)
    assert result.status == "completed"
    forbidden = [v for k, v in SECRETS.items() if k != "SB_PLANT_PW"]
    assert_nothing_planted(
        store=store, logs=logs.getvalue(), forbidden=[*forbidden, *PERSONAL],
        evidence=("<text:", "<invalid-json:", "<email>", "HTTP 403", "<redacted>", "h1:"))
