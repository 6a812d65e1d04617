"""``preset: socketio``: Socket.IO v4 (Engine.IO 4) over its WebSocket transport.

The packet codec is :func:`decode` (sans-I/O): a frame's text becomes the
document the reply rules read, ``{"type": "ack", "id": 17, "nsp": "/",
"data": [...]}``. On every connect: the Engine.IO ``open`` packet, then the
namespace ``CONNECT`` (``40``) answered by ``40{"sid": ...}``, both within
``target.connect_timeout``. Each message is an event with an acknowledgement:
``42<id>["<kind name>", <body>]`` (the single ``message:`` kind is the event
``message``); the server's ack ``43<id>[...]`` answers it (an ``error`` set in
the ack's first argument makes it an ``error_reply``). The server's pings
(``2``) are answered with ``3``; events it pushes are ``other`` rows named
``event``. A ``ws://host:port`` URL without a path gets ``/socket.io/``, and
``EIO=4&transport=websocket`` is added to the query when missing.

Protocol: https://socket.io/docs/v4/socket-io-protocol/ and
https://github.com/socketio/engine.io-protocol (v4).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from streambench.generate.engine.conversation import Plan, PlanStep
from streambench.generate.engine.correlate import NOT_JSON, Classifier, Match
from streambench.generate.protocols.presets.common import (
    connect_timeout,
    kinds,
    rule,
    template,
    user_rules,
    user_steps,
)
from streambench.limits import too_deep
from streambench.scenario.model import Message, Scenario

ENGINE_TYPES = {"0": "open", "1": "close", "2": "ping", "3": "pong", "5": "upgrade",
                "6": "noop"}
SOCKET_TYPES = {"0": "connect", "1": "disconnect", "2": "event", "3": "ack",
                "4": "connect_error", "5": "binary_event", "6": "binary_ack"}


def decode(text: str) -> Any:
    """An Engine.IO/Socket.IO text packet as a document; :data:`NOT_JSON` if it is none."""
    if not text:
        return NOT_JSON
    engine = text[0]
    if engine in ENGINE_TYPES:
        return {"type": ENGINE_TYPES[engine], "data": _json(text[1:]) if text[1:] else None}
    if engine != "4" or len(text) < 2 or text[1] not in SOCKET_TYPES:
        return NOT_JSON
    kind, rest = SOCKET_TYPES[text[1]], text[2:]
    nsp = "/"
    if rest.startswith("/"):
        nsp, _, rest = rest.partition(",")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    packet_id = int(rest[:digits]) if digits else None
    data = _json(rest[digits:]) if rest[digits:] else None
    if data is NOT_JSON:
        return NOT_JSON
    doc = {"type": kind, "nsp": nsp, "id": packet_id, "data": data}
    if kind == "event" and isinstance(data, list) and data:
        doc["event"] = data[0]
    return doc


def _json(text: str) -> Any:
    if too_deep(text):
        return NOT_JSON
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return NOT_JSON


def engine_url(url: str) -> str:
    """``ws://h:p`` -> ``ws://h:p/socket.io/?EIO=4&transport=websocket``."""
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else "/socket.io/"
    query = parts.query
    for key, value in (("EIO", "4"), ("transport", "websocket")):
        if f"{key}=" not in query:
            query = f"{query}&{key}={value}" if query else f"{key}={value}"
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def envelope(kind: Message) -> tuple[Message, Any]:
    adjusted = kind.model_copy(update={"cid_field": None, "cid_type": "integer",
                                       "seq_field": None})
    return adjusted, [kind.name, kind.body]


def socketio_plan(scenario: Scenario) -> Plan:
    rules, responses = user_rules(scenario)
    rules += [rule("ack", {"type": "ack"}, "answer"),
              *(rule(name, {"type": name}) for name in
                ("event", "ping", "pong", "noop", "open", "connect", "connect_error",
                 "disconnect", "close"))]
    responses = {"ping": template("3", scenario), **responses}
    timeout = connect_timeout(scenario)
    steps = (
        PlanStep("open", expect=Match.build({"type": "open"}), timeout=timeout),
        PlanStep("connect", send=template("40", scenario),
                 expect=Match.build({"type": "connect"}), timeout=timeout),
    )
    return Plan(
        kinds=kinds(scenario, envelope, prefix=lambda kind: "42{{cid}}"),
        classifier=Classifier(id_path=("id",), error_path=("data", 0, "error"), rules=rules),
        steps=(*steps, *user_steps(scenario)), decode=decode, responses=responses,
        variables=dict(scenario.variables), seed=scenario.seed, url=engine_url,
        looked_for=scenario.looked_for(),
    )
