"""Presets: the conversations of common protocols, so nobody scripts them by hand.

``preset: jsonrpc`` (JSON-RPC 2.0 over WebSocket, HTTP or MQTT),
``preset: graphql-ws`` (GraphQL over the graphql-transport-ws subprotocol) and
``preset: socketio`` (Socket.IO v4 over the Engine.IO WebSocket transport).
Each compiles a scenario into a :class:`~streambench.generate.engine.conversation.Plan`:
the envelope around the scenario's ``message.body``, the set-up steps, the
reply rules (the scenario's own rules are checked first) and, for Socket.IO,
the packet codec. Reference: docs/backends.md.
"""

from __future__ import annotations

from streambench.errors import ConfigError
from streambench.generate.engine.conversation import Plan
from streambench.scenario.model import Scenario


def preset_plan(scenario: Scenario) -> Plan:
    """The plan of ``scenario.preset``."""
    if scenario.preset == "jsonrpc":
        from streambench.generate.protocols.presets.jsonrpc import jsonrpc_plan

        return jsonrpc_plan(scenario)
    if scenario.preset == "graphql-ws":
        from streambench.generate.protocols.presets.graphql_ws import graphql_ws_plan

        return graphql_ws_plan(scenario)
    if scenario.preset == "socketio":
        from streambench.generate.protocols.presets.socketio import socketio_plan

        return socketio_plan(scenario)
    raise ConfigError(f"preset: no preset named {scenario.preset!r}")
