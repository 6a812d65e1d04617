"""``preset: jsonrpc``: JSON-RPC 2.0 requests with integer ids, answered by ``id``.

The scenario's body is the call: ``{method: echo, params: {...}}``. Each
request gets ``"jsonrpc": "2.0"`` and an integer ``id`` (unique in the run),
nothing else; a kind with ``expect: none`` is a notification (no ``id``). A
response with ``error`` set is an ``error_reply`` (its message and code as
the error text); a server notification (a ``method`` and no ``id``) is an
``other`` row named ``notification``.
"""

from __future__ import annotations

from typing import Any

from streambench.generate.engine.conversation import Plan
from streambench.generate.engine.correlate import Classifier, Match, Rule
from streambench.generate.protocols.presets.common import kinds, user_rules, user_steps
from streambench.scenario.model import Message, Scenario


def envelope(kind: Message) -> tuple[Message, Any]:
    notification = kind.expect == "none"
    adjusted = kind.model_copy(update={"cid_field": None if notification else "id",
                                       "cid_type": "integer", "seq_field": None})
    return adjusted, {"jsonrpc": "2.0", **kind.body}  # type: ignore[dict-item]


def jsonrpc_plan(scenario: Scenario) -> Plan:
    rules, responses = user_rules(scenario)
    rules.append(Rule("notification", Match.build({"id": None}, r'"method"\s*:')))
    return Plan(
        kinds=kinds(scenario, envelope),
        classifier=Classifier(id_path=("id",), error_path=("error",), rules=rules),
        steps=user_steps(scenario), subprotocols=tuple(getattr(scenario.target,
                                                                "subprotocols", ())),
        responses=responses, variables=dict(scenario.variables), seed=scenario.seed,
        looked_for=scenario.looked_for(),
    )
