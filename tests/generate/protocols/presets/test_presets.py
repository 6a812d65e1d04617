"""The presets' envelopes, packet codec and reply rules, without sockets."""

from __future__ import annotations

import orjson
import pytest

from streambench.generate.engine.conversation import compile_plan
from streambench.generate.engine.correlate import NOT_JSON
from streambench.generate.protocols.presets.socketio import decode, engine_url
from streambench.scenario.model import Scenario

BASE = {"name": "p", "load": {"rate": 10, "duration": "1s"}}


def plan_of(preset: str, **sections: object):  # type: ignore[no-untyped-def]
    target = {"url": "ws://127.0.0.1:1/"}
    return compile_plan(Scenario.model_validate({**BASE, "preset": preset, "target": target,
                                                 **sections}))


def test_jsonrpc_adds_nothing_but_version_and_an_integer_id() -> None:
    plan = plan_of("jsonrpc", messages=[
        {"name": "echo", "body": {"method": "echo", "params": {"text": "hi"}}},
        {"name": "log", "body": {"method": "log", "params": ["x"]}, "expect": "none"}])
    framer = plan.framer(2)
    sent = {}
    for seq in range(1, 40):
        kind, cid, data = framer.message(seq)
        sent[kind.name] = orjson.loads(data), cid
    (echo, cid), (log, _) = sent["echo"], sent["log"]
    assert echo == {"jsonrpc": "2.0", "method": "echo", "params": {"text": "hi"},
                    "id": int(cid)}
    assert log == {"jsonrpc": "2.0", "method": "log", "params": ["x"]}  # a notification
    c = plan.classifier
    assert c.classify(f'{{"jsonrpc": "2.0", "result": "hi", "id": {cid}}}').cid == cid
    error = c.classify('{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},'
                       '"id":7}')
    assert (error.action, error.error) == ("error", "Method not found (code -32601)")
    assert c.classify('{"jsonrpc":"2.0","method":"tick","params":[]}').action == "other"


def test_graphql_ws_wraps_the_operation_and_reads_its_stream() -> None:
    plan = plan_of("graphql-ws", message={"body": {"query": "subscription { n }"}})
    assert plan.subprotocols == ("graphql-transport-ws",)
    assert [s.name for s in plan.steps] == ["connection_init"]
    kind, cid, data = plan.framer(0).message(3)
    assert kind.expect == "stream"
    assert orjson.loads(data) == {"type": "subscribe", "payload": {"query": "subscription { n }"},
                                  "id": cid}
    c = plan.classifier
    assert (c.classify(f'{{"id":"{cid}","type":"next","payload":{{"data":{{"n":1}}}}}}')
            .action) == "answer"
    assert c.classify(f'{{"id":"{cid}","type":"complete"}}').action == "end"
    bad = c.classify(f'{{"id":"{cid}","type":"next","payload":{{"errors":[{{"message":"no"}}]}}}}')
    assert (bad.action, bad.error) == ("error", "no")
    assert c.classify('{"type":"ping"}').rule.name == "ping"  # type: ignore[union-attr]
    assert plan.responses["ping"].fill(0, {}) == b'{"type":"pong"}'


@pytest.mark.parametrize(("text", "doc"), [
    ('0{"sid":"a","pingInterval":25000}', {"type": "open", "data": {"sid": "a",
                                                                   "pingInterval": 25000}}),
    ("2", {"type": "ping", "data": None}),
    ('40{"sid":"x"}', {"type": "connect", "nsp": "/", "id": None, "data": {"sid": "x"}}),
    ('4317[{"ok":true}]', {"type": "ack", "nsp": "/", "id": 17, "data": [{"ok": True}]}),
    ('42["news",{"a":1}]', {"type": "event", "nsp": "/", "id": None,
                            "data": ["news", {"a": 1}], "event": "news"}),
    ('43/admin,5[1]', {"type": "ack", "nsp": "/admin", "id": 5, "data": [1]}),
])
def test_socketio_packets_decode(text: str, doc: dict[str, object]) -> None:
    assert decode(text) == doc


@pytest.mark.parametrize("text", ["", "x", "4", "49[]", '42["broken'])
def test_what_is_no_socketio_packet_is_not_json(text: str) -> None:
    assert decode(text) is NOT_JSON


def test_socketio_events_carry_an_ack_id_and_the_url_its_engine_path() -> None:
    plan = plan_of("socketio", message={"name": "chat", "body": {"text": "hi"}})
    _, cid, data = plan.framer(1).message(4)
    assert data == b'42' + cid.encode() + b'["chat",{"text":"hi"}]'
    verdict = plan.classifier.classify(f'43{cid}[{{"ok":true}}]', decode(f"43{cid}[{{}}]"))
    assert (verdict.action, verdict.cid) == ("answer", cid)
    assert engine_url("ws://h:1") == "ws://h:1/socket.io/?EIO=4&transport=websocket"
    assert engine_url("ws://h:1/x/?EIO=4&transport=websocket&t=1") == \
        "ws://h:1/x/?EIO=4&transport=websocket&t=1"
