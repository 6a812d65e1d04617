"""What the presets share: the scenario's own kinds, rules and steps, compiled."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streambench.generate.engine.conversation import (
    PlanStep,
    compile_kind,
    compile_rules,
    compile_step,
    slot_names,
)
from streambench.generate.engine.correlate import Match, Rule
from streambench.generate.engine.frames import FrameTemplate, Kind
from streambench.scenario.model import Message, Scenario


def kinds(scenario: Scenario, wrap: Callable[[Message], tuple[Message, Any]], *,
          expect: str = "reply", prefix: Callable[[Message], str] | None = None
          ) -> tuple[Kind, ...]:
    """The scenario's kinds, each body in the preset's envelope (``wrap`` -> kind, body)."""
    slots = slot_names(scenario)
    out = []
    for kind in scenario.kinds():
        adjusted, body = wrap(kind)
        if prefix is None:
            out.append(compile_kind(adjusted, scenario, slots, body=body,
                                    expect=kind.expect or expect))
            continue
        # a packet header before the JSON (Socket.IO's 42<ack id>)
        framed = FrameTemplate(body, seed=scenario.seed, pool=adjusted.pool, slots=slots,
                               string_id=adjusted.cid_type == "string", prefix=prefix(adjusted))
        out.append(Kind(name=kind.name, weight=kind.weight, template=framed,
                        integer_id=adjusted.cid_type == "integer",
                        expect=kind.expect or expect))
    return tuple(out)


def user_rules(scenario: Scenario) -> tuple[list[Rule], dict[str, FrameTemplate]]:
    """The scenario's own rules (checked before the preset's) and their responses."""
    return compile_rules(scenario.replies.rules, scenario, slot_names(scenario))


def user_steps(scenario: Scenario) -> tuple[PlanStep, ...]:
    steps = getattr(scenario.target, "on_connect", ())
    return tuple(compile_step(s, scenario, slot_names(scenario), index=i)
                 for i, s in enumerate(steps))


def rule(name: str, fields: dict[str, Any], action: str = "other", **extra: Any) -> Rule:
    return Rule(name=name, match=Match.build(fields), action=action, **extra)


def template(body: Any, scenario: Scenario) -> FrameTemplate:
    return FrameTemplate(body, seed=scenario.seed, pool=1, slots=slot_names(scenario))


def connect_timeout(scenario: Scenario) -> float:
    return float(scenario.target.connect_timeout)


def names(rules: Sequence[Rule]) -> set[str]:
    return {r.name for r in rules}
