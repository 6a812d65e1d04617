"""Client-side fault injection in scenarios: the ``faults:`` list, typed and validated.

Each entry names its ``kind`` and when it applies. Times are seconds from the
start of the schedule (YAML may say ``500ms``, ``2s``, ...)::

    faults:
      - {kind: delay, delay: 50ms, jitter: 20ms, probability: 0.1}
      - {kind: drop, probability: 0.01, at: 2s, for: 1s}
      - {kind: duplicate, probability: 0.02}
      - {kind: reorder, window: 3, probability: 0.05}
      - {kind: schema_drift, at: 5s, rename: {text: body}, remove: [user], retype: {n: string}}
      - {kind: malformed, probability: 0.01}
      - {kind: disconnect, at: 3s, fraction: 0.5, for: 1s}
      - {kind: burst, at: 4s, for: 500ms, rate: 2000}

Message faults (delay, drop, duplicate, reorder, schema_drift, malformed)
apply to a scheduled message when its *intended* send time falls in
``[at, at + for)`` (``for`` omitted: until the end) and a seeded draw is below
``probability``. ``disconnect`` closes a seeded ``fraction`` of connections
abruptly at ``at`` and keeps them down for ``for`` (then they reconnect with
the scenario's backoff). ``burst`` adds ``rate`` extra messages/s over all
connections during its window. The decisions are made by
:mod:`streambench.generate.faults.plan`; docs/protocols.md is the reference.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _duration(value: Any) -> float:
    # Imported here: the scenario model imports this module for its ``faults`` field.
    from streambench.scenario.model import parse_duration

    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Fault(BaseModel):
    # "for" is a Python keyword: the field is ``for_`` and reads/writes as "for".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              populate_by_name=True, serialize_by_alias=True)

    at: Duration = 0.0  # start of the window, seconds from the start of the schedule
    for_: Duration | None = Field(default=None, alias="for")  # None: until the end

    def window_ns(self, end_s: float) -> tuple[int, int]:
        """``[start, end)`` of the window in ns from the schedule's start."""
        end = end_s if self.for_ is None else self.at + self.for_
        return round(self.at * 1e9), round(end * 1e9)


class _MessageFault(_Fault):
    probability: Probability = 1.0  # per message in the window


class DelayFault(_MessageFault):
    """Hold a message back before sending it (latency still counts from its intended time)."""

    kind: Literal["delay"]
    delay: Duration = 0.0  # fixed part
    jitter: Duration = 0.0  # plus a seeded uniform draw in [0, jitter]

    @model_validator(mode="after")
    def _some_delay(self) -> DelayFault:
        if self.delay <= 0 and self.jitter <= 0:
            raise ValueError("a delay fault needs delay or jitter > 0")
        return self


class DropFault(_MessageFault):
    """A scheduled message is not sent at all."""

    kind: Literal["drop"]


class DuplicateFault(_MessageFault):
    """The message is sent, then sent again ``copies`` times (same bytes, same cid)."""

    kind: Literal["duplicate"]
    copies: int = Field(default=1, ge=1, le=100)


class ReorderFault(_MessageFault):
    """The message is held back and sent right after the next ``window`` messages."""

    kind: Literal["reorder"]
    window: int = Field(default=1, ge=1, le=10_000)


FieldType = Literal["string", "int", "float", "bool", "null", "array", "object"]


class SchemaDriftFault(_MessageFault):
    """Top-level body fields renamed, removed or retyped in messages from ``at`` on."""

    kind: Literal["schema_drift"]
    rename: dict[str, str] = Field(default_factory=dict)  # old name -> new name
    remove: tuple[str, ...] = ()
    retype: dict[str, FieldType] = Field(default_factory=dict)  # field -> new JSON type

    @model_validator(mode="after")
    def _some_change(self) -> SchemaDriftFault:
        if not (self.rename or self.remove or self.retype):
            raise ValueError("a schema_drift fault needs rename, remove or retype")
        return self


class MalformedFault(_MessageFault):
    """The message is cut short by its closing brace: invalid JSON, cid still readable."""

    kind: Literal["malformed"]


class DisconnectFault(_Fault):
    """Abruptly close a seeded ``fraction`` of connections at ``at``; down for ``for``."""

    kind: Literal["disconnect"]
    fraction: Probability = 1.0


class BurstFault(_Fault):
    """``rate`` extra messages/s over all connections during ``[at, at + for)``."""

    kind: Literal["burst"]
    rate: float = Field(gt=0, le=10_000_000)


Fault = Annotated[
    DelayFault | DropFault | DuplicateFault | ReorderFault | SchemaDriftFault | MalformedFault
    | DisconnectFault | BurstFault,
    Field(discriminator="kind"),
]
MessageFault = (DelayFault | DropFault | DuplicateFault | ReorderFault | SchemaDriftFault
                | MalformedFault)
FAULT_KINDS = ("delay", "drop", "duplicate", "reorder", "schema_drift", "malformed",
               "disconnect", "burst")
