"""How a scenario's conversation fits together: messages, replies, steps, variables.

Checked by :class:`~streambench.scenario.model.Scenario` once its fields are
valid; every problem is a :class:`~streambench.scenario.conversation.FieldProblem`
naming the field (``replies.id``, ``messages[1].cid_field``), so the loader
reports its file and line. Kept apart from the model so that each stays a
readable size; it never imports the model at run time.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from streambench.scenario.conversation import FieldProblem, Replies, Step, check_variables
from streambench.scenario.synth import BUILTIN, GENERATORS, placeholder_names

if TYPE_CHECKING:
    from streambench.scenario.model import Scenario

PRESET_IDS = {
    "jsonrpc": "the request's integer id at 'id' (a JSON-RPC 2.0 response)",
    "graphql-ws": "the operation's id at 'id' of next/complete/error messages",
    "socketio": "an ack (43<id>[...]) with the event's ack id",
}
PRESET_PROTOCOLS = {"jsonrpc": ("websocket", "mqtt"), "graphql-ws": ("websocket",),
                     "socketio": ("websocket",)}


def check_conversation(scenario: Scenario) -> None:
    """How messages, replies, steps and variables fit together (FieldProblem if not)."""
    if scenario.messages and scenario.message != type(scenario.message)():
        raise FieldProblem(("messages",), "give message (one kind) or messages (a mix), "
                           "not both")
    names = [kind.name for kind in scenario.messages]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise FieldProblem(("messages", index, "name"), f"kind name {name!r} is used twice")
    if scenario.target.protocol == "grpc":  # a protobuf request: its own fields
        kind = scenario.message
        if scenario.messages or scenario.variables or isinstance(kind.body, str) \
                or kind.cid_field is None or kind.seq_field is None \
                or scenario.replies.model_copy(update={"id": None}) != Replies():
            raise FieldProblem(("message",), "a gRPC request carries its id and seq in fields "
                               "of the request message: messages, variables, reply rules, "
                               "text bodies and null cid_field/seq_field do not apply "
                               "(replies.id, where a bidi reply carries the id, does)")
    if scenario.target.protocol in ("http", "sse"):
        _check_request_response(scenario)
    check_variables(scenario.variables, set(BUILTIN) | set(GENERATORS))
    _check_placeholders(scenario)
    _check_preset(scenario)
    _check_correlation(scenario)
    _check_stream(scenario)
    check_fanout(scenario)
    _check_url_placeholders(scenario)


FANOUT_PROTOCOLS = ("websocket", "mqtt")


def check_fanout(scenario: Scenario) -> None:
    """``expect: fanout`` kinds and the ``fanout`` section fit the target and each other."""
    fanout, protocol = scenario.fanout, scenario.target.protocol
    kinds = [(i, k) for i, k in enumerate(scenario.kinds()) if k.expect == "fanout"]
    if not kinds:
        if fanout is not None:
            raise FieldProblem(("fanout",), "no message kind has expect: fanout, so nothing "
                               "is delivered to a group: add expect: fanout to the kind that "
                               "is broadcast, or remove fanout")
        return
    index = kinds[0][0]
    if protocol not in FANOUT_PROTOCOLS:
        raise FieldProblem((*_kind_loc(scenario, index), "expect"), f"fan-out is measured "
                           f"over websocket and mqtt, not {protocol}")
    by_property = getattr(scenario.target, "correlation_data", False)
    if scenario.replies.in_order or (scenario.reply_id() is None and not by_property):
        raise FieldProblem((*_kind_loc(scenario, index), "cid_field"), "a delivery is told "
                           "apart by the id it carries: the fan-out kind needs a cid_field "
                           "(or {{cid}} in its body and replies.id), not in_order")
    if fanout is None:
        return
    if fanout.group is not None:
        if protocol == "mqtt":
            raise FieldProblem(("fanout", "group"), "over MQTT the group is the topic: the "
                               "members are the connections subscribed to the sender's "
                               "publish topic; remove fanout.group")
        known = {"conn", *scenario.variables}
        for _, name in placeholder_names(fanout.group):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean {{{{{close[0]}}}}}?" if close else \
                    " (a group is made of {{conn}} and the scenario's variables)"
                raise FieldProblem(("fanout", "group"), f"unknown placeholder "
                                   f"{{{{{name}}}}}{hint}")
    if fanout.senders is not None and fanout.senders > scenario.load.connections:
        raise FieldProblem(("fanout", "senders"), f"{fanout.senders} senders but "
                           f"load.connections is {scenario.load.connections}")


def _check_url_placeholders(scenario: Scenario) -> None:
    """A WebSocket URL may name a room per connection (``ws://h/ws/chat/{{room}}/``)."""
    target = scenario.target
    names = [name for _, name in placeholder_names(target.url)]
    if not names:
        return
    if target.protocol != "websocket":
        raise FieldProblem(("target", "url"), "{{placeholders}} in the URL apply to "
                           "websocket targets")
    known = {"conn", *scenario.variables}
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {{{{{close[0]}}}}}?" if close else \
                " (a URL may use {{conn}} and the scenario's variables)"
            raise FieldProblem(("target", "url"), f"unknown placeholder {{{{{name}}}}}{hint}")


def _check_request_response(scenario: Scenario) -> None:
    """HTTP answers each request on its own exchange (SSE sends nothing): no reply to read."""
    protocol = scenario.target.protocol
    if scenario.replies != Replies():
        raise FieldProblem(("replies",), f"{protocol} matches each answer to its request: "
                           "replies (ids and rules) apply to websocket and mqtt")
    for index, kind in enumerate(scenario.kinds()):
        if kind.expect not in (None, "reply"):
            raise FieldProblem((*_kind_loc(scenario, index), "expect"), f"over {protocol} "
                               "every request gets one answer: expect none or stream apply "
                               "to websocket and mqtt")


def _check_stream(scenario: Scenario) -> None:
    """The ``stream`` section reads pushes: the scenario must have some."""
    if scenario.stream == type(scenario.stream)():
        return
    protocol = scenario.target.protocol
    if protocol not in ("websocket", "mqtt", "sse"):
        raise FieldProblem(("stream",), f"{protocol} answers requests and pushes nothing: "
                           "stream applies to websocket, mqtt and sse")
    if protocol == "sse":
        return  # every event is a push
    rules = any(rule.as_ == "push" for rule in scenario.replies.rules)
    kinds = scenario.kinds()
    streams = any(kind.expect == "stream" for kind in kinds) or (
        scenario.preset == "graphql-ws" and any(kind.expect is None for kind in kinds))
    if not rules and not streams:
        raise FieldProblem(("stream",), "no pushes to read: add a reply rule with as: push "
                           "(replies.rules) or a message with expect: stream")


def _kind_loc(scenario: Scenario, index: int) -> tuple[str | int, ...]:
    return ("messages", index) if scenario.messages else ("message",)


def _check_placeholders(scenario: Scenario) -> None:
    target = scenario.target
    steps: tuple[Step, ...] = getattr(target, "on_connect", ())
    known = {*BUILTIN, *GENERATORS, *scenario.variables,
             *(name for step in steps for name in step.capture)}
    where: list[tuple[tuple[str | int, ...], Any]] = []  # bodies are checked by Message
    where += [(("target", "on_connect", i, "send"), step.send) for i, step in enumerate(steps)]
    where += [(("replies", "rules", i, "respond"), rule.respond)
              for i, rule in enumerate(scenario.replies.rules)]
    for loc, value in where:
        for inner, name in placeholder_names(value):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean {{{{{close[0]}}}}}?" if close else \
                    " (not a placeholder, a variable or a captured value)"
                raise FieldProblem((*loc, *inner), f"unknown placeholder {{{{{name}}}}}{hint}")


def _check_preset(scenario: Scenario) -> None:
    preset = scenario.preset
    if preset is None:
        return
    protocol = scenario.target.protocol
    if protocol not in PRESET_PROTOCOLS[preset]:
        raise FieldProblem(("preset",), f"preset {preset} speaks over "
                           f"{' or '.join(PRESET_PROTOCOLS[preset])}, not {protocol}")
    for index, kind in enumerate(scenario.kinds()):
        for key in ("cid_field", "cid_type", "seq_field"):
            if getattr(kind, key) != type(kind).model_fields[key].default:
                raise FieldProblem((*_kind_loc(scenario, index), key),
                                   f"preset {preset} decides {key}; remove it")
        if not isinstance(kind.body, dict):
            raise FieldProblem((*_kind_loc(scenario, index), "body"),
                               f"preset {preset} sends an object body (its envelope wraps it)")
    if scenario.replies.id is not None or scenario.replies.in_order:
        raise FieldProblem(("replies", "id"), f"preset {preset} decides where replies carry "
                           "the id; remove it")


def _check_correlation(scenario: Scenario) -> None:
    if scenario.preset is not None:
        return
    kinds = scenario.kinds()
    answered = [(i, k) for i, k in enumerate(kinds) if k.expect != "none"]
    by_property = getattr(scenario.target, "correlation_data", False)
    replies = scenario.replies
    if by_property:
        if replies.id is not None or replies.in_order:
            raise FieldProblem(("replies", "id"), "with target.correlation_data replies are "
                               "matched by their correlation data; remove replies.id")
        return
    if replies.id is not None:
        for index, kind in answered:
            if not kind.carries_id:
                raise FieldProblem(("replies", "id"), f"{kind.name} carries no id "
                                   f"({'.'.join(map(str, _kind_loc(scenario, index)))}.cid_field"
                                   " is null and its body has no {{cid}}), so no reply can carry "
                                   "it: remove replies.id to match replies in order")
        return
    if replies.in_order:
        streams = [i for i, k in answered if k.expect == "stream"]
        if streams:
            raise FieldProblem(("replies", "in_order"), "a stream's replies are told apart by "
                               "their id: in_order cannot match them")
        return
    carrying = {k.cid_field for _, k in answered if k.carries_id}
    if None in carrying:
        index = next(i for i, k in answered if k.carries_id and k.cid_field is None)
        raise FieldProblem((*_kind_loc(scenario, index), "body"), "the request carries its id "
                           "as {{cid}} in the body: say where replies carry it (replies.id), "
                           "or match replies in order (replies.in_order: true)")
    if len(carrying) > 1:
        raise FieldProblem(("replies", "id"), "the message kinds carry their id in different "
                           "places: say where replies carry it (replies.id)")
    if carrying and any(not k.carries_id for _, k in answered):
        index = next(i for i, k in answered if not k.carries_id)
        raise FieldProblem((*_kind_loc(scenario, index), "cid_field"), "this kind expects a "
                           "reply but carries no id while others do: give it a cid_field, or "
                           "expect: none")
