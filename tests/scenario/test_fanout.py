"""Fan-out mistakes in a scenario are validation errors naming the field."""

from __future__ import annotations

import textwrap

import pytest

from streambench.errors import ScenarioError
from streambench.scenario.load import parse_scenario

HEAD = "name: t\nload: {rate: 10, duration: 1s, connections: 4}\n"
FANOUT = "message: {body: {t: x}, expect: fanout}\n"


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(HEAD + textwrap.dedent(text), file="s.yaml")
    return [(p.path, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(("text", "path", "fragment"), [
    ("fanout: {group: '{{room}}'}\n", "fanout", "no message kind has expect: fanout"),
    (FANOUT + "fanout: {group: '{{rom}}'}\nvariables: {room: [a, b]}\n", "fanout.group",
     "did you mean {{room}}?"),
    (FANOUT + "fanout: {group: '{{token}}'}\n", "fanout.group", "unknown placeholder"),
    (FANOUT + "fanout: {senders: 5}\n", "fanout.senders", "load.connections is 4"),
    ("message: {body: {t: x}, expect: fanout, cid_field: null}\n", "message.cid_field",
     "told apart by the id it carries"),
    (FANOUT + "target: {protocol: mqtt, url: 'mqtt://h'}\nfanout: {group: a}\n",
     "fanout.group", "the group is the topic"),
    (FANOUT + "target: {protocol: http, url: 'http://h/'}\n", "message.expect",
     "expect none or stream apply"),
    (FANOUT + "target: {url: 'ws://h/chat/{{rom}}/'}\nvariables: {room: [a]}\n",
     "target.url", "did you mean {{room}}?"),
])
def test_fanout_mistakes_name_the_field(text: str, path: str, fragment: str) -> None:
    found = problems(text)
    assert any(p == path and fragment in m for p, m in found), found


def test_a_room_per_connection_in_the_url_and_the_group_is_valid() -> None:
    scenario = parse_scenario(HEAD + FANOUT + textwrap.dedent("""\
        target: {url: 'ws://127.0.0.1:1/ws/chat/{{room}}/'}
        variables: {room: [a, b]}
        fanout: {group: '{{room}}', self: true, senders: 2}
        """), file="s.yaml")
    assert scenario.fans_out
    assert scenario.fanout is not None
    assert scenario.fanout.self_
