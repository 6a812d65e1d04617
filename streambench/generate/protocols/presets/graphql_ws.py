"""``preset: graphql-ws``: GraphQL over WebSocket, the graphql-transport-ws subprotocol.

On every connect: ``connection_init``, then ``connection_ack`` within
``target.connect_timeout``. The scenario's body is the operation
(``{query: "subscription { ... }", variables: {...}}``); each message is
``{"id": <cid>, "type": "subscribe", "payload": <body>}``. Replies:

* ``next`` with the operation's id: the first resolves the message (a ``recv``,
  latency to the first result), the following ones are ``other`` rows named
  ``next`` while the stream is open; GraphQL ``errors`` in a ``next`` payload
  make it an ``error_reply``;
* ``complete`` ends the stream (an ``other`` row); ``error`` is an
  ``error_reply`` with the server's messages;
* ``ping`` is answered with ``pong`` (both are ``other`` rows).

Every kind expects a stream unless it says ``expect: reply`` or ``none``.
Protocol: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md
"""

from __future__ import annotations

from typing import Any

from streambench.generate.engine.conversation import Plan, PlanStep
from streambench.generate.engine.correlate import Classifier, Match
from streambench.generate.protocols.presets.common import (
    connect_timeout,
    kinds,
    rule,
    template,
    user_rules,
    user_steps,
)
from streambench.scenario.model import Message, Scenario

SUBPROTOCOL = "graphql-transport-ws"


def envelope(kind: Message) -> tuple[Message, Any]:
    adjusted = kind.model_copy(update={"cid_field": "id", "cid_type": "string",
                                       "seq_field": None})
    return adjusted, {"type": "subscribe", "payload": kind.body}


def graphql_ws_plan(scenario: Scenario) -> Plan:
    rules, responses = user_rules(scenario)
    rules += [
        rule("next", {"type": "next"}, "answer"),
        rule("complete", {"type": "complete"}, "end"),
        rule("error", {"type": "error"}, "error", error=("payload",)),
        rule("ping", {"type": "ping"}),
        rule("pong", {"type": "pong"}),
        rule("connection_ack", {"type": "connection_ack"}),
    ]
    responses = {"ping": template({"type": "pong"}, scenario), **responses}
    init = PlanStep("connection_init", send=template({"type": "connection_init"}, scenario),
                    expect=Match.build({"type": "connection_ack"}),
                    timeout=connect_timeout(scenario))
    subprotocols = tuple(getattr(scenario.target, "subprotocols", ())) or (SUBPROTOCOL,)
    return Plan(
        kinds=kinds(scenario, envelope, expect="stream"),
        classifier=Classifier(id_path=("id",), error_path=("payload", "errors"), rules=rules),
        steps=(init, *user_steps(scenario)), subprotocols=subprotocols, responses=responses,
        variables=dict(scenario.variables), seed=scenario.seed,
        looked_for=scenario.looked_for(),
    )
