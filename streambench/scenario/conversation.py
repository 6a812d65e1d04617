"""The conversation keys of a scenario: replies and their rules, set-up steps, variables.

What a back end sends back is classified by ``replies`` (see docs/backends.md):
a reply is an *answer* (its correlation id is at ``replies.id``), or a rule in
``replies.rules`` recognises it as something else: a welcome frame, a ping,
a server push, the end of a stream. ``target.on_connect`` steps run on every
connect and reconnect (send, wait for the expected answer within a timeout,
capture values into per-connection variables). ``variables`` are per
connection: ``{{room}}`` in a body, ``{room}`` in an MQTT topic.

Only models and their own checks live here; :mod:`streambench.scenario.model`
checks how they fit together.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streambench.scenario.durations import Duration
from streambench.scenario.secrets import template_problem

NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
PRESETS = ("jsonrpc", "graphql-ws", "socketio")
RULE_ACTIONS = ("answer", "error", "end", "other", "push")


# The names a scenario defines ({{variables}}, captured values) while it is validated,
# so a body's placeholders are judged where they are written (Scenario sets it).
DEFINED_NAMES: ContextVar[frozenset[str] | None] = ContextVar("defined_names", default=None)


def defined_names(data: Any) -> frozenset[str]:
    """Variable and captured names in raw scenario data (before validation)."""
    if not isinstance(data, dict):
        return frozenset()
    names = set(data["variables"]) if isinstance(data.get("variables"), dict) else set()
    target = data.get("target")
    steps = target.get("on_connect") if isinstance(target, dict) else None
    for step in steps if isinstance(steps, list | tuple) else ():
        capture = step.get("capture") if isinstance(step, dict) else None
        if isinstance(capture, dict):
            names |= {str(name) for name in capture}
    return frozenset(names)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              populate_by_name=True)


class FieldProblem(ValueError):
    """A model-level problem about one field (``loc`` relative to the model)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def path_problem(text: str) -> str | None:
    """Why ``text`` is not a field path (``reply_to``, ``data.request_id``), or None."""
    if not text or any(not part.strip() or part != part.strip() for part in text.split(".")):
        return (f"bad path {text!r}: expected names joined by '.', such as reply_to or "
                "data.request_id (a list item by its index: items.0.id)")
    return None


def pattern_problem(text: str) -> str | None:
    try:
        re.compile(text)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    return None


def check_match(match: dict[str, Any] | None, pattern: str | None, *, key: str
                ) -> None:
    """Raise FieldProblem for a bad path or regex; a match with neither matches everything."""
    if not match and pattern is None:
        raise FieldProblem((key,), f"give {key} (field values) or pattern (a regular "
                           "expression on the raw text): an empty match takes every reply")
    for path in match or {}:
        problem = path_problem(path)
        if problem is not None:
            raise FieldProblem((key, path), problem)
    if pattern is not None and (problem := pattern_problem(pattern)) is not None:
        raise FieldProblem(("pattern",), problem)


class ReplyRule(_Model):
    """``{name: welcome, match: {type: welcome}}``: replies that fit are recorded as ``other``
    rows with status ``welcome`` (or what ``as`` says), never as protocol errors.
    ``as: push`` records them as server pushes (``push`` rows, see the ``stream`` section)."""

    name: str = Field(pattern=NAME)
    match: dict[str, Any] | None = None  # path -> value (or a list of values); null: missing
    pattern: str | None = None  # a regular expression searched in the raw text
    as_: Literal["answer", "error", "end", "other", "push"] = Field(default="other", alias="as")
    id: str | None = None  # where these replies carry the id (answer, error, end, push)
    respond: dict[str, Any] | str | None = None  # sent back at once (a pong for a ping)

    @model_validator(mode="after")
    def _check(self) -> ReplyRule:
        check_match(self.match, self.pattern, key="match")
        if self.id is not None and (problem := path_problem(self.id)) is not None:
            raise FieldProblem(("id",), problem)
        if self.id is not None and self.as_ == "other":
            raise FieldProblem(("id",), "id applies to rules with as: answer, error, end or "
                               "push")
        return self


class Replies(_Model):
    """How replies are read: where an answer carries the id, what makes it an error."""

    id: str | None = None  # None: the request's own cid path; in order if it carries none
    in_order: bool = False  # answers carry no id: each answers the oldest message in flight
    error: str | None = "error"  # an answer whose field here is set is an error reply
    rules: tuple[ReplyRule, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Replies:
        for key in ("id", "error"):
            value = getattr(self, key)
            if value is not None and (problem := path_problem(value)) is not None:
                raise FieldProblem((key,), problem)
        if self.in_order and self.id is not None:
            raise FieldProblem(("in_order",), "give replies.id or in_order: true, not both")
        names = [rule.name for rule in self.rules]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise FieldProblem(("rules", index, "name"), f"rule name {name!r} is used twice")
        return self


class Step(_Model):
    """One set-up step on every connect: send, then wait for the answer that fits."""

    name: str = Field(pattern=NAME)
    send: dict[str, Any] | str | None = None  # may use {{variables}} and ${SECRETS}
    expect: dict[str, Any] | None = None  # field values the awaited answer has
    pattern: str | None = None  # or a regular expression its raw text matches
    timeout: Duration | None = None  # required when the step waits for an answer
    capture: dict[str, str] = Field(default_factory=dict)  # variable -> path in the answer

    @model_validator(mode="after")
    def _check(self) -> Step:
        for text in _strings(self.send):
            if (problem := template_problem(text)) is not None:
                raise FieldProblem(("send",), problem)
        waits = self.expect is not None or self.pattern is not None
        if self.send is None and not waits:
            raise FieldProblem(("send",), "a step sends something (send), waits for an "
                               "answer (expect or pattern), or both")
        if waits:
            check_match(self.expect, self.pattern, key="expect")
            if self.timeout is None:
                raise FieldProblem(("timeout",), "a step that waits for an answer needs a "
                                   "timeout (such as 5s)")
        elif self.capture:
            raise FieldProblem(("capture",), "capture reads the awaited answer: give expect")
        for name, path in self.capture.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise FieldProblem(("capture", name), "a variable name is letters, digits "
                                   "and '_'")
            if (problem := path_problem(path)) is not None:
                raise FieldProblem(("capture", name), problem)
        return self


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


class Fanout(_Model):
    """``fanout:``: a message kind with ``expect: fanout`` is sent on one connection and
    expected on every other member of the sender's group (docs/backends.md#fan-out).

    Over WebSocket the members of a group are the connections whose ``group``
    renders the same (``{{room}}``, ``room-{{conn}}``; unset: every connection);
    over MQTT the group is the sender's publish topic and its members the
    connections subscribed to it.
    """

    group: str | None = None  # websocket: a template of {{conn}} and variables
    self_: bool = Field(default=False, alias="self")  # the sender gets its own copy too
    senders: int | None = Field(default=None, ge=1)  # only connections 0..senders-1 send

    @model_validator(mode="after")
    def _check(self) -> Fanout:
        if self.group is not None and not self.group.strip():
            raise FieldProblem(("group",), "an empty group: give a template such as "
                               "'{{room}}', or leave group out (every connection)")
        return self


Variable = str | list[str | int | float | bool]
"""A per-connection variable: a text template (``user-{conn}``) or a list, of which
connection ``conn`` gets item ``conn % len``."""


def check_variables(variables: dict[str, Variable], reserved: set[str]) -> None:
    for name, value in variables.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise FieldProblem((name,), "a variable name is letters, digits and '_'")
        if name in reserved:
            raise FieldProblem((name,), f"{name!r} is a built-in placeholder; rename the variable")
        if isinstance(value, list) and not value:
            raise FieldProblem((name,), "a list variable needs at least one item")
        if isinstance(value, str):
            try:
                value.format(conn=0)
            except (KeyError, IndexError, ValueError):
                raise FieldProblem((name,), f"bad template {value!r}: only {{conn}} may be "
                                   "used") from None


def variable_value(value: Variable, conn: int) -> Any:
    """Connection ``conn``'s value of a variable."""
    if isinstance(value, list):
        return value[conn % len(value)]
    return value.format(conn=conn)
