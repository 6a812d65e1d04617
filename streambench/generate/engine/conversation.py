"""A scenario's conversation, compiled once per run: what to send, how to read replies.

Sans-I/O. :func:`compile_plan` turns the scenario's ``message``/``messages``,
``replies``, ``variables``, ``target.on_connect`` and ``preset`` into a
:class:`Plan`: frame templates per message kind, the reply
:class:`~streambench.generate.engine.correlate.Classifier`, the set-up steps
and how a frame is decoded (JSON, or a preset's packets). A client asks the
plan for one :class:`~streambench.generate.engine.frames.Framer` per
connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from streambench.generate.engine.correlate import (
    Classifier,
    Match,
    Path,
    Rule,
    parse,
    parse_path,
)
from streambench.generate.engine.frames import Framer, FrameTemplate, Kind, with_field
from streambench.scenario.conversation import ReplyRule, Step, variable_value
from streambench.scenario.model import Message, Scenario
from streambench.scenario.secrets import resolve_value
from streambench.scenario.synth import BUILTIN

Decode = Callable[[str], Any]  # a frame's text -> the document rules and paths read
_NO_VALUES: Mapping[str, Any] = MappingProxyType({})  # shared by the framers of plain runs


@dataclass(frozen=True)
class PlanStep:
    """A compiled set-up step: send (a template), then await a reply that matches."""

    name: str
    send: FrameTemplate | None = None
    expect: Match | None = None
    timeout: float | None = None
    capture: tuple[tuple[str, Path], ...] = ()


@dataclass(frozen=True)
class Plan:
    """Everything a client needs to hold a scenario's conversation (immutable)."""

    kinds: tuple[Kind, ...]
    classifier: Classifier
    steps: tuple[PlanStep, ...] = ()
    subprotocols: tuple[str, ...] = ()
    decode: Decode = parse
    responses: Mapping[str, FrameTemplate] = field(default_factory=dict)  # rule -> frame
    variables: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    in_order: bool = False  # answers carry no id: each answers the oldest in flight
    looked_for: str = ""  # what an answer must carry, in words (for diagnosis)
    url: Callable[[str], str] | None = None  # a preset's URL rewrite (Socket.IO's path)

    def framer(self, conn: int) -> Framer:
        """Connection ``conn``'s (global index) framer, its variables resolved."""
        values: Mapping[str, Any] = _NO_VALUES
        if self.variables:
            values = {name: variable_value(value, conn) for name, value in self.variables.items()}
        return Framer(self.kinds, conn=conn, seed=self.seed, variables=values)

    def frame(self, i: int, cid: str, seq: int) -> bytes:
        """Message ``i`` of the first kind, for clients without a framer per connection
        (variables as connection 0 has them)."""
        kind = self.kinds[0]
        fast = kind.template.fast
        if fast is not None:
            return fast[i % len(fast)] % (cid.encode(), seq)
        return self.framer(0).fill(kind.template, i, cid=cid, seq=seq,
                                   integer_id=kind.integer_id)

    @property
    def bodies(self) -> int:
        """How many different bodies :meth:`frame` cycles through: ``message.pool``, or
        one when nothing in the body is drawn at random."""
        return len(self.kinds[0].template.formats)

    @property
    def plain(self) -> bool:
        """One kind, JSON, id and seq appended, no rules or steps: the echo fast path."""
        return len(self.kinds) == 1 and not self.steps and not self.classifier.rules \
            and self.decode is parse and not self.in_order


def compile_plan(scenario: Scenario) -> Plan:
    """The scenario's conversation (presets applied); raises ConfigError for a bad preset."""
    if scenario.preset is not None:
        from streambench.generate.protocols.presets import preset_plan

        return preset_plan(scenario)
    slots = slot_names(scenario)
    kinds = tuple(compile_kind(k, scenario, slots) for k in scenario.kinds())
    correlation_data = getattr(scenario.target, "correlation_data", False)
    id_path = None if correlation_data else scenario.reply_id()
    replies = scenario.replies
    rules, responses = compile_rules(replies.rules, scenario, slots)
    classifier = Classifier(id_path=None if id_path is None else parse_path(id_path),
                            error_path=None if replies.error is None
                            else parse_path(replies.error), rules=rules)
    steps: Sequence[Step] = getattr(scenario.target, "on_connect", ())
    return Plan(
        kinds=kinds, classifier=classifier,
        steps=tuple(compile_step(s, scenario, slots, index=i) for i, s in enumerate(steps)),
        subprotocols=tuple(getattr(scenario.target, "subprotocols", ())),
        responses=responses, variables=dict(scenario.variables), seed=scenario.seed,
        in_order=id_path is None and not correlation_data,
        looked_for=scenario.looked_for(),
    )


def slot_names(scenario: Scenario) -> frozenset[str]:
    steps: Sequence[Step] = getattr(scenario.target, "on_connect", ())
    return frozenset({*BUILTIN, *scenario.variables,
                      *(name for step in steps for name in step.capture)})


def compile_kind(kind: Message, scenario: Scenario, slots: frozenset[str], *,
                 body: Any = None, expect: str | None = None) -> Kind:
    """A message kind's template: the body with ``{{cid}}``/``{{seq}}`` at their fields."""
    body = kind.body if body is None else body
    if isinstance(body, dict):
        if kind.cid_field is not None:
            body = with_field(body, kind.cid_field, "{{cid}}")
        if kind.seq_field is not None:
            body = with_field(body, kind.seq_field, "{{seq}}")
    template = FrameTemplate(body, seed=scenario.seed, pool=kind.pool, slots=slots,
                             string_id=kind.cid_type == "string")
    return Kind(name=kind.name, weight=kind.weight, template=template,
                integer_id=kind.cid_type == "integer", expect=expect or kind.expect or "reply")


def compile_rules(rules: Sequence[ReplyRule], scenario: Scenario, slots: frozenset[str]
                  ) -> tuple[list[Rule], dict[str, FrameTemplate]]:
    compiled, responses = [], {}
    for rule in rules:
        compiled.append(Rule(name=rule.name, match=Match.build(rule.match, rule.pattern),
                             action=rule.as_,
                             id=None if rule.id is None else parse_path(rule.id)))
        if rule.respond is not None:
            responses[rule.name] = FrameTemplate(rule.respond, seed=scenario.seed, pool=1,
                                                 slots=slots)
    return compiled, responses


def compile_step(step: Step, scenario: Scenario, slots: frozenset[str], *, index: int = 0
                 ) -> PlanStep:
    """A set-up step, its ``${SECRETS}`` resolved (the plan lives in memory only)."""
    send = None
    if step.send is not None:
        body = resolve_value(step.send, field=f"target.on_connect[{index}].send")
        send = FrameTemplate(body, seed=scenario.seed, pool=1, slots=slots)
    waits = step.expect is not None or step.pattern is not None
    return PlanStep(name=step.name, send=send,
                    expect=Match.build(step.expect, step.pattern) if waits else None,
                    timeout=step.timeout,
                    capture=tuple((name, parse_path(path)) for name, path in
                                  step.capture.items()))
