"""Scenario mistakes in conversations are validation errors naming the field and line."""

from __future__ import annotations

import textwrap

import pytest

from streambench.errors import ScenarioError
from streambench.scenario.load import parse_scenario

HEAD = "name: t\nload: {rate: 10, duration: 1s}\n"


def problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(HEAD + textwrap.dedent(text), file="s.yaml")
    return [(p.path, p.line, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(("text", "path", "line", "fragment"), [
    ("message: {body: {a: 1}, cid_field: null}\nreplies: {id: reply_to}\n", "replies.id", 4,
     "carries no id"),
    ("replies: {id: 'data..id'}\n", "replies.id", 3, "bad path 'data..id'"),
    ("replies:\n  rules:\n    - {name: any, match: {}}\n", "replies.rules[0].match", 5,
     "an empty match takes every reply"),
    ("replies:\n  rules:\n    - {name: x, pattern: '(unclosed'}\n",
     "replies.rules[0].pattern", 5, "not a regular expression"),
    ("target:\n  url: ws://h/\n  on_connect:\n    - {name: auth, send: {t: 1}, "
     "expect: {ok: true}}\n", "target.on_connect[0].timeout", 6, "needs a timeout"),
    ("target:\n  url: ws://h/\n  on_connect:\n    - {name: idle}\n",
     "target.on_connect[0].send", 6, "sends something"),
    ("message: {body: {room: '{{rom}}'}}\nvariables: {room: [a]}\n", "message.body.room", 3,
     "did you mean {{room}}?"),
    ("message: {body: 'PING', cid_field: id}\n", "message.cid_field", 3, "a text body"),
    ("message: {body: {data: 'x'}, cid_field: data.request_id}\n", "message.cid_field", 3,
     "'data' in the body is not an object"),
    ("preset: graphql-ws\ntarget: {protocol: http, url: 'http://h/'}\n", "preset", 3,
     "speaks over websocket, not http"),
    ("preset: jsonrpc\nmessage: {body: {method: m}, cid_field: rid}\n", "message.cid_field", 4,
     "preset jsonrpc decides cid_field"),
    ("target: {protocol: mqtt, url: 'mqtt://h', correlation_data: true, "
     "mqtt_version: '3.1.1'}\n", "target.correlation_data", 3, "MQTT 5 property"),
    ("message: {body: {a: '{{cid}}'}, cid_field: null}\n", "message.body", 3,
     "say where replies carry it"),
    ("messages:\n  - {name: a, body: {x: 1}}\n  - {name: a, body: {x: 2}}\n",
     "messages[1].name", 5, "used twice"),
])
def test_mistakes_name_the_field(text: str, path: str, line: int, fragment: str) -> None:
    found = problems(text)
    assert any(p == path and fragment in m for p, _, m in found), found
    assert [ln for p, ln, _ in found if p == path] == [line]


def test_a_sound_conversation_is_valid() -> None:
    scenario = parse_scenario(HEAD + textwrap.dedent("""\
        variables: {room: [lobby, news], user: "user-{conn}"}
        target:
          url: ws://127.0.0.1:1/chat
          subprotocols: [chat.v2]
          on_connect:
            - {name: auth, send: {type: auth, token: "${TOKEN}"}, expect: {type: ok},
               timeout: 2s, capture: {session: session.id}}
        messages:
          - {name: say, weight: 3, cid_field: meta.id, cid_type: integer, seq_field: null,
             body: {type: say, room: "{{room}}", by: "{{user}}", s: "{{session}}"}}
          - {name: typing, expect: none, cid_field: null, seq_field: null, body: {t: x}}
        replies:
          id: reply_to
          rules:
            - {name: ping, match: {type: ping}, respond: {type: pong}}
            - {name: done, match: {type: [complete, done]}, as: end}
        """))
    assert scenario.reply_id() == "reply_to"
    assert scenario.looked_for() == "the request's id at 'reply_to' (a number such as 3000000017)"


@pytest.mark.parametrize(("text", "path"), [
    ("target: {protocol: http, url: 'http://h/'}\nreplies: {id: x}\n", "replies"),
    ("target: {protocol: http, url: 'http://h/'}\nmessage: {body: {a: 1}, expect: stream}\n",
     "message.expect"),
])
def test_http_reads_no_replies(text: str, path: str) -> None:
    assert path in [p for p, _, _ in problems(text)]
