"""HTTP and SSE runs over real sockets: statuses, errors, fallback, event-stream gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import polars as pl
import pytest
from aiohttp import web

from streambench.analyze.summary import format_summary
from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import ConfigError, TargetError, TargetUnreachable
from tests.helpers import TIME_SCALE, free_port, scenario

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def http_server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``url = await http_server(handler, path="/x")``: a plain aiohttp server on 127.0.0.1."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, *, method: str = "*", path: str = "/{tail:.*}") -> str:
        app = web.Application()
        app.router.add_route(method, path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def accounted(s: dict) -> None:
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]


@pytest.mark.parametrize("engine", ["lean", "aiohttp"])
async def test_status_codes_and_errors_are_accounted(store: Store, engine: str):
    sc = scenario(target={"protocol": "http", "url": "embedded", "http_engine": engine,
                          "server": {"error_rate": 0.2, "disconnect_rate": 0.1, "seed": 5}},
                  load={"connections": 2, "rate": 200, "duration": "1s"})
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    assert events["protocol"].unique().to_list() == ["http"]
    sends = events.filter(pl.col("kind") == "send")
    assert sends.height == 200
    answered = events.filter(pl.col("kind").is_in(["recv", "error", "timeout"])
                             & pl.col("seq").is_not_null())
    assert answered["cid"].sort().to_list() == sends["cid"].sort().to_list()  # each exactly once
    statuses = dict(answered.group_by("kind", "status").len().select(
        pl.concat_str("kind", pl.col("status").fill_null("-"), separator=":"), "len").iter_rows())
    assert statuses["recv:200"] > 120
    assert 15 <= statuses["error:500"] <= 70
    assert 5 <= statuses["error:disconnected"] <= 40
    errors = events.filter(pl.col("status") == "500")
    assert set(errors["error"]) == {"HTTP 500 Internal Server Error"}
    assert all(p == f'{{"cid":"{c}"}}' for p, c in errors.select("payload", "cid").iter_rows())
    assert events.filter(pl.col("kind") == "recv")["topic"].unique().to_list() == ["/echo"]
    accounted(result.summary)  # an HTTP 500 is a message error in the summary
    assert result.summary["errors"] == statuses["error:500"] + statuses["error:disconnected"]


async def test_method_headers_and_body_template_reach_the_server(store: Store, http_server,
                                                                 monkeypatch):
    seen: list[tuple[str, str, str, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.method, request.path, request.headers.get("X-Token", ""), body))
        if len(seen) % 4 == 0:
            return web.Response(status=503, reason="Busy", text="try later")
        return web.Response(body=body, content_type="application/json")

    url = await http_server(handler)
    monkeypatch.setenv("API_TOKEN", "t0k3n")
    sc = scenario(target={"protocol": "http", "url": url + "/api/v1/items", "method": "put",
                          "headers": {"X-Token": "${API_TOKEN}"}},
                  load={"connections": 1, "rate": 40, "duration": "500ms"},
                  message={"body": {"item": "{{choice:pen:cup}}", "n": "{{int:1:9}}"}},
                  capture={"redaction": {"allow": ["item", "n"]}})
    result = await run_async(sc, store=store)
    assert len(seen) == 20
    assert {(m, p, t) for m, p, t, _ in seen} == {("PUT", "/api/v1/items", "t0k3n")}
    assert all(b'"item":"' in body and b'"cid":"0-' in body for *_, body in seen)
    s = result.summary
    assert s["sent"] == 20
    events = store.events(result.run_id).collect()
    busy = events.filter(pl.col("status") == "503")
    assert busy.height == 5
    assert set(busy["error"]) == {"HTTP 503 Busy"}
    assert events.filter(pl.col("kind") == "recv").height == 15
    assert "t0k3n" not in str(store.manifest(result.run_id))


async def test_an_unreachable_http_target_is_one_clear_error(store: Store):
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(TargetUnreachable, match="refused"):
        await run_async(scenario(target={"protocol": "http", "url": url}), store=store)


async def test_a_refused_websocket_upgrade_falls_back_to_http(store: Store, http_server):
    async def echo(request: web.Request) -> web.Response:  # no WebSocket here
        return web.Response(body=await request.read(), content_type="application/json")

    ws_url = (await http_server(echo)).replace("http://", "ws://") + "/chat"
    load = {"connections": 2, "rate": 100, "duration": "500ms"}
    with pytest.raises(TargetError, match="refused the WebSocket upgrade"):
        await run_async(scenario(target={"url": ws_url}, load=load), store=store)
    result = await run_async(scenario(target={"url": ws_url, "fallback": "http"}, load=load),
                             store=store)
    events = store.events(result.run_id).collect()
    assert events["protocol"].unique().to_list() == ["http"]
    notes = events.filter(pl.col("status") == "fallback")
    assert notes.height == 2
    assert notes["error"].str.contains("falling back to HTTP").all()
    assert result.summary["received"] == result.summary["sent"] == 50
    assert events.filter(pl.col("kind") == "recv")["topic"].unique().to_list() == ["/chat"]


async def test_faults_apply_to_http_requests(store: Store):
    sc = scenario(target={"protocol": "http", "url": "embedded"},
                  load={"connections": 1, "rate": 100, "duration": "500ms"},
                  faults=[{"kind": "delay", "delay": "30ms", "probability": 0.5},
                          {"kind": "drop", "probability": 0.2}], seed=3)
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    dropped = events.filter(pl.col("status") == "drop")["cid"]
    delayed = events.filter(pl.col("status") == "delay")["cid"]
    assert dropped.len() > 0
    assert delayed.len() > 0
    assert result.summary["sent"] == 50 - dropped.len()
    recv = events.filter(pl.col("kind") == "recv")
    assert (recv.filter(pl.col("cid").is_in(delayed))["latency_ms"] >= 30).all()
    accounted(result.summary)


async def test_sse_events_are_pushes_with_gaps_staleness_and_sequence(store: Store):
    sc = scenario(target={"protocol": "sse", "url": "embedded"},
                  load={"connections": 2, "rate": 40, "duration": "1s"},  # 20 events/s/stream
                  stream={"timestamp": "ts_ns", "timestamp_format": "epoch_ns",
                          "sequence": "seq"})
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    pushes = events.filter(pl.col("kind") == "push").sort("conn", "ts")
    assert pushes.height >= 36
    assert events.filter(pl.col("kind") == "recv").height == 0
    assert pushes["protocol"].unique().to_list() == ["sse"]
    assert pushes["latency_ms"].null_count() == pushes.height  # a gap is no latency
    gaps = ((pushes["ts"] - pushes["intended_ns"].cast(pl.Datetime("ns", "UTC")))
            .dt.total_microseconds() / 1000).drop_nulls()
    # Events that waited unread while the run started (the streams open before its
    # zero) have no staleness; they and each stream's first have no gap.
    unread = pushes["sent_ns"].null_count()
    assert unread < pushes.height // 2
    assert pushes.height - 2 - 2 * unread <= gaps.len() <= pushes.height - 2
    assert 40.0 <= gaps.median() <= 60.0 * TIME_SCALE  # the target pushes every 50 ms
    staleness = ((pushes["ts"].cast(pl.Int64) - pushes["sent_ns"]) / 1e6).drop_nulls()
    assert 0 <= staleness.median() < 50 * TIME_SCALE  # same clock, local socket
    assert pushes.group_by("conn").agg(pl.col("seq").min())["seq"].to_list() == [0, 0]
    s = result.summary
    assert s["sent"] == s["received"] == 0
    assert s["pushes"]["received"] == pushes.height
    assert s["pushes"]["sequence"] == {"missing": 0, "duplicates": 0, "out_of_order": 0,
                                       "streams": 2}
    assert (s["intended_rate"], s["achieved_ratio"], s["latency_ms"]["p50"]) == (None,) * 3
    text = format_summary(s)  # a gap is not called latency, no rate was offered
    assert "latency" not in text
    assert "achieved" not in text
    assert f"pushes  received {pushes.height}" in text
    assert "sequence gaps  missing 0  duplicates 0  out of order 0" in text


async def test_sse_streams_that_end_are_reopened_and_gaps_show_stalls(store: Store,
                                                                       http_server):
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f"id: e{i}\nevent: tick\ndata: {{\"i\": {i}}}\n\n".encode())
            await asyncio.sleep(0.01 if i < 2 else 0.15)  # a stall before the end
        return response

    url = await http_server(stream, method="GET")
    sc = scenario(target={"protocol": "sse", "url": url + "/events",
                          "reconnect": {"initial": "20ms", "max": "20ms"}},
                  load={"connections": 1, "rate": 10, "duration": "600ms"})
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    kinds = events["kind"].value_counts()
    connects = kinds.filter(pl.col("kind") == "connect")["count"][0]
    assert connects >= 2  # the stream ended and was reopened
    pushes = events.filter(pl.col("kind") == "push")
    assert set(pushes["status"]) == {"e0", "e1", "e2"}  # the events' id: fields
    assert pushes["topic"].unique().to_list() == ["tick"]


async def test_a_refused_event_stream_is_named(store: Store, http_server):
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=404)

    url = await http_server(refuse)
    with pytest.raises(TargetError, match="refused the event stream: HTTP 404"):
        await run_async(scenario(target={"protocol": "sse", "url": url + "/nope"}), store=store)


@pytest.mark.parametrize(
    ("url", "method", "message"),
    [("https://127.0.0.1:1/x", "POST", "lean speaks plain http:// only"),
     ("http://127.0.0.1:1/x", "HEAD", "lean does not send HEAD requests")],
)
async def test_the_lean_engine_refuses_what_it_cannot_do_in_one_line(
        store: Store, url: str, method: str, message: str):
    sc = scenario(target={"protocol": "http", "url": url, "method": method,
                          "http_engine": "lean"})
    with pytest.raises(ConfigError, match=message):
        await run_async(sc, store=store)


@pytest.mark.parametrize("engine", ["lean", "aiohttp"])
async def test_a_scenario_content_type_in_any_case_is_the_only_one(store: Store, http_server,
                                                                  engine: str):
    seen: list[list[str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.getall("Content-Type"))
        return web.Response(body=await request.read())

    url = await http_server(handler)
    sc = scenario(target={"protocol": "http", "url": url + "/x", "http_engine": engine,
                          "headers": {"content-type": "application/cloudevents+json"}},
                  load={"connections": 1, "rate": 20, "duration": "250ms"})
    await run_async(sc, store=store)
    assert seen
    assert all(values == ["application/cloudevents+json"] for values in seen)


@pytest.mark.parametrize("engine", ["lean", "aiohttp"])
async def test_requests_that_time_out_are_counted_once(store: Store, http_server, engine: str):
    release = asyncio.Event()

    async def never(request: web.Request) -> web.Response:
        await release.wait()  # answers only once the test ends
        return web.Response(text="too late")

    url = await http_server(never)
    sc = scenario(target={"protocol": "http", "url": url + "/x", "http_engine": engine},
                  load={"connections": 1, "rate": 20, "duration": "500ms", "timeout": "200ms"})
    result = await run_async(sc, store=store)
    release.set()
    s = result.summary
    assert s["sent"] == s["timeouts"] == 10
    assert s["errors"] == s["protocol_errors"] == 0  # no invented 'late' replies
    statuses = store.events(result.run_id).filter(pl.col("kind") == "error").collect()["status"]
    assert "late" not in statuses.to_list()


async def test_a_body_over_the_limit_is_too_big_and_never_buffered(store: Store, http_server):
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(64):  # 4 MiB offered; the client stops at 64 KiB
            await response.write(b"x" * 65536)
        return response

    url = await http_server(huge)
    sc = scenario(target={"protocol": "http", "url": url + "/x", "max_message_bytes": 65536},
                  load={"connections": 1, "rate": 10, "duration": "300ms"})
    result = await run_async(sc, store=store)
    events = store.events(result.run_id).collect()
    assert events.filter(pl.col("status") == "too_big").height == result.summary["sent"] == 3
    accounted(result.summary)


def test_header_values_that_would_split_the_request_are_refused() -> None:
    with pytest.raises(ValueError, match="must not contain CR, LF or NUL"):
        scenario(target={"protocol": "http", "url": "http://127.0.0.1:9/",
                         "headers": {"X-A": "1\r\nX-Injected: 2"}})


async def test_a_resolved_secret_that_would_split_the_request_is_refused(store: Store,
                                                                        monkeypatch):
    monkeypatch.setenv("EVIL_TOKEN", "t\r\nX-Injected: 1")
    sc = scenario(target={"protocol": "http", "url": "embedded",
                          "headers": {"Authorization": "Bearer ${EVIL_TOKEN}"}})
    with pytest.raises(ConfigError, match=r"^target\.headers\.Authorization: a header value "
                                          r"must not contain CR, LF or NUL"):
        await run_async(sc, store=store)
