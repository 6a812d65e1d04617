"""The scenario model: the one place YAML becomes typed, validated objects.

Every model is frozen and forbids unknown keys, so a typo is an error (the
loader turns pydantic's errors into one line each, with file, field path, line
and a suggestion). Durations are seconds as floats; YAML may say ``500ms``,
``30s``, ``5m``, ``2h`` or a bare number of seconds.

Strings may carry secrets as ``${ENV_VAR}``: they stay unresolved in the model
(so dumping a scenario into a manifest never leaks them) and are resolved only
when a connection is opened (:func:`streambench.scenario.secrets.resolve`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from streambench import limits
from streambench.scenario.faults import Fault
from streambench.scenario.secrets import template_problem
from streambench.scenario.synth import check_body, pool_problem

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# "1h30m", "2m30s", "1s500ms": whole-number parts, largest unit first
_COMPOUND = re.compile(r"^\s*(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?\s*$")
_LONG_UNITS = {  # words people write, for the "did you mean" hint
    "ms": ("msec", "msecs", "millis", "millisecond", "milliseconds"),
    "s": ("sec", "secs", "second", "seconds"),
    "m": ("min", "mins", "minute", "minutes"),
    "h": ("hr", "hrs", "hour", "hours"),
}
_EXPECTED_DURATION = "expected a duration such as 500ms, 30s, 5m, 2h or 1h30m"


def parse_duration(value: Any) -> float:
    """``"500ms"`` -> 0.5, ``"5m"`` -> 300.0, ``"1h30m"`` -> 5400.0, ``2`` -> 2.0 (seconds)."""
    if isinstance(value, bool):
        raise ValueError(f"{_EXPECTED_DURATION}, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a duration >= 0, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        compound = _COMPOUND.match(value)
        if compound and any(compound.groups()):
            h, m, s, ms = (int(part or 0) for part in compound.groups())
            return h * 3600.0 + m * 60.0 + s + ms / 1000
        raise ValueError(f"{_EXPECTED_DURATION}, got {value!r}{_duration_hint(value)}")
    raise ValueError(f"{_EXPECTED_DURATION}, got {value!r}")


def _duration_hint(text: str) -> str:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$", text)
    if match:
        number, word = match.group(1), match.group(2).lower()
        for unit, words in _LONG_UNITS.items():
            if word in words or word == unit:
                return f"; did you mean {number}{unit}?"
    return ""


Duration = Annotated[float, BeforeValidator(parse_duration)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class FieldProblem(ValueError):
    """Raised by a model-level validator about one of the model's fields.

    ``loc`` is the field's position relative to the model, so the loader can
    report ``target.url`` rather than ``target``.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Model(BaseModel):
    # NaN and infinity are never a sensible rate, duration or threshold.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServerFaults(_Model):
    """Fault knobs of the built-in target (``streambench serve`` and ``url: embedded``).

    Rates are probabilities per message; periods fire on a clock from server start.
    """

    latency: Duration = 0.0  # added to every reply
    jitter: Duration = 0.0  # uniform extra delay in [0, jitter]
    stall_every: Duration | None = None  # period of stalls: replies held back...
    stall_for: Duration = 1.0  # ...for this long, then released together
    drop_rate: Probability = 0.0  # reply never sent
    error_rate: Probability = 0.0  # reply is {"cid": ..., "error": "injected error"}
    disconnect_rate: Probability = 0.0  # connection closed abruptly instead of a reply
    disconnect_every: Duration | None = None  # every connection closed once per period
    seed: int = 0


# A delay of 0 turns a refused reconnect into a busy loop writing error rows.
ReconnectDelay = Annotated[Duration, Field(ge=limits.RECONNECT_DELAY_S)]


class Reconnect(_Model):
    initial: ReconnectDelay = 0.1
    max: ReconnectDelay = 5.0
    factor: float = Field(default=2.0, ge=1.0)
    attempts: int | None = Field(default=None, ge=0)  # None: keep trying until the run ends


_URL_SCHEMES = {  # MQTT may also run over WebSockets (aiomqtt transport="websockets")
    "websocket": ("ws", "wss"),
    "http": ("http", "https"),
    "sse": ("http", "https"),
    "mqtt": ("mqtt", "mqtts", "ws", "wss"),
}


class Will(_Model):
    """An MQTT last will: published by the broker when a connection is lost uncleanly."""

    topic: str  # may use {conn}
    payload: str = ""
    qos: Literal[0, 1, 2] = 0
    retain: bool = False


class Target(_Model):
    protocol: Literal["websocket", "mqtt", "http", "sse"] = "websocket"
    url: str = "embedded"  # "embedded" starts the built-in target for the run
    headers: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    connect_timeout: Duration = 5.0
    reconnect: Reconnect = Field(default_factory=Reconnect)
    max_message_bytes: int = Field(default=1 << 20, ge=1024)  # bigger frames are errors
    fallback: Literal["http"] | None = None
    server: ServerFaults = Field(default_factory=ServerFaults)  # only for url: embedded
    # MQTT (see docs/scenarios.md); ignored by other protocols
    publish: str = "streambench/{conn}"
    subscribe: str | None = None  # None: same as publish (the broker's fan-out is the echo)
    qos: Literal[0, 1, 2] = 1
    mqtt_version: Literal["3.1.1", "5"] = "5"
    clean_session: bool = True
    username: str | None = None
    password: str | None = None
    tls: bool = False
    retain: bool = False
    will: Will | None = None
    # auto: the lean built-in codec for mqtt(s)://, aiomqtt for MQTT over ws(s)://
    mqtt_engine: Literal["auto", "wire", "aiomqtt"] = "auto"
    # HTTP client: lean (plain http://, keep-alive, httptools' C parser; the fastest),
    # aiohttp (complete: TLS, redirects); auto: lean for http://, aiohttp for https://
    http_engine: Literal["auto", "lean", "aiohttp"] = "auto"
    # HTTP
    method: str = "POST"

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    @model_validator(mode="after")
    def _templates(self) -> Target:
        fields: list[tuple[tuple[str, ...], str | None]] = [
            (("url",), self.url), (("username",), self.username), (("password",), self.password)
        ]
        fields += [(("headers", name), value) for name, value in self.headers.items()]
        for loc, text in fields:
            problem = None if text is None else template_problem(text)
            if problem is not None:
                raise FieldProblem(loc, problem)
        return self

    @model_validator(mode="after")
    def _url_fits_protocol(self) -> Target:
        # A URL that is a ${SECRET} template is checked when it is resolved.
        if self.embedded and self.protocol == "mqtt":
            raise FieldProblem(("url",), "the built-in target speaks WebSocket, HTTP and SSE, "
                               "not MQTT: give a broker URL such as mqtt://127.0.0.1:1883")
        if self.embedded or self.url.startswith("${"):
            return self
        scheme = self.url.partition("://")[0].lower() if "://" in self.url else ""
        allowed = _URL_SCHEMES[self.protocol]
        if scheme not in allowed:
            schemes = " or ".join(f"{s}://" for s in allowed)
            raise FieldProblem(("url",), f"url {self.url!r} does not fit protocol "
                               f"{self.protocol}: expected embedded or a {schemes} URL")
        return self


RunDuration = Annotated[Duration, Field(gt=0, le=limits.DURATION_S)]
Rate = Annotated[float, Field(ge=0, le=limits.RATE)]


class Stage(_Model):
    """One stage of a load profile: ``rate`` at its start, ramping linearly to ``to``."""

    duration: RunDuration
    rate: Rate
    to: Rate | None = None  # None: hold `rate` for the whole stage


class Load(_Model):
    connections: int = Field(default=1, ge=1, le=1_000_000)
    rate: float | None = Field(default=None, gt=0, le=limits.RATE)  # messages/s, all connections
    duration: RunDuration | None = None
    stages: tuple[Stage, ...] | None = None
    arrival: Literal["constant", "poisson"] = "constant"
    timeout: Duration = Field(default=5.0, gt=0)  # a reply later than this is a timeout
    heartbeat: Duration | None = None  # websocket ping interval; None: no pings

    @model_validator(mode="after")
    def _one_profile(self) -> Load:
        if self.stages is not None:
            if self.rate is not None or self.duration is not None:
                raise ValueError("give either rate and duration, or stages, not both")
            if not self.stages:
                raise ValueError("stages must list at least one stage")
        elif self.rate is None or self.duration is None:
            raise ValueError("give rate and duration (or a list of stages)")
        if self.total_duration > limits.DURATION_S:
            raise ValueError(f"the stages last {self.total_duration:,.0f}s; at most "
                             f"{limits.DURATION_S:,.0f}s (30 days)")
        if self.messages > limits.MESSAGES:
            raise ValueError(f"rate x duration schedules {self.messages:,.0f} messages; at "
                             f"most {limits.MESSAGES:,} per run")
        return self

    @property
    def messages(self) -> float:
        """How many messages the profile schedules (ramps count their mean rate)."""
        return sum(s.duration * (s.rate + (s.rate if s.to is None else s.to)) / 2
                   for s in self.profile())

    def profile(self) -> tuple[Stage, ...]:
        """The load as stages, whichever way the scenario said it."""
        if self.stages is not None:
            return self.stages
        assert self.rate is not None
        assert self.duration is not None
        return (Stage(duration=self.duration, rate=self.rate),)

    @property
    def total_duration(self) -> float:
        return sum(stage.duration for stage in self.profile())


# Replies are searched for `"<cid_field>":"` as text: no quote, backslash or control character.
FieldName = Annotated[str, Field(min_length=1, max_length=64, pattern=r'^[^"\\\x00-\x1f]+$')]


class Message(_Model):
    body: dict[str, Any] = Field(default_factory=lambda: {"text": "{{sentence}}"})
    cid_field: FieldName = "cid"
    seq_field: FieldName = "seq"
    pool: int = Field(default=1024, ge=1)  # distinct synthetic bodies to cycle through

    @model_validator(mode="after")
    def _placeholders(self) -> Message:
        # Raises synth.BodyProblem (a ValueError carrying every problem with its
        # position in the body); the loader expands it into one Problem each.
        check_body(self.body, cid_field=self.cid_field, seq_field=self.seq_field)
        problem = pool_problem(self.body, self.pool)
        if problem is not None:
            raise FieldProblem(("pool",), problem)
        return self


class Redaction(_Model):
    """Deny by default: ``allow`` paths kept (free text masked), ``hash`` paths keyed-
    hashed, the rest dropped (docs/privacy.md). Paths: ``a.b``, ``items[].sku``."""

    allow: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    key_file: str | None = None  # per-period HMAC keys; else $STREAMBENCH_HASH_KEY
    rotation: Literal["daily", "weekly", "monthly", "never"] = "monthly"

    @model_validator(mode="after")
    def _field_paths(self) -> Redaction:
        for path in (*self.allow, *self.hash):
            if not _FIELD_PATH.fullmatch(path):
                raise ValueError(f"bad field path {path!r}: expected names joined by '.', "
                                 "a list as 'name[]' (e.g. items[].sku)")
        return self


_FIELD_PATH = re.compile(r"(?:\[\]\.)?[^.\[\]]+(?:\[\])?(?:\.[^.\[\]]+(?:\[\])?)*")


class Capture(_Model):
    redaction: Redaction = Field(default_factory=Redaction)
    retention_days: int = Field(default=14, ge=1)
    payloads: bool = True  # store (redacted) payloads; False keeps only metadata
    flush_every: Duration = Field(default=1.0, gt=0)
    flush_rows: int = Field(default=200_000, ge=1000)


class Slo(_Model):
    p50_ms: float | None = Field(default=None, gt=0)
    p90_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    max_ms: float | None = Field(default=None, gt=0)
    error_rate: Probability | None = None
    min_throughput: float | None = Field(default=None, ge=0)  # received messages/s
    # windowed objectives: [{p95_ms: 50, window: 10s, quantile: 0.99}, ...]
    windows: tuple[dict[str, Any], ...] = ()

    @field_validator("windows")
    @classmethod
    def _windowed(cls, windows: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        checked = []
        for item in windows:
            metrics = [k for k in item if k in _WINDOWED_METRICS]
            unknown = [k for k in item if k not in _WINDOWED_METRICS and k not in
                       ("window", "quantile")]
            if unknown or len(metrics) != 1:
                raise ValueError(f"each window needs exactly one of "
                                 f"{', '.join(_WINDOWED_METRICS)}, plus window and quantile")
            window = parse_duration(item.get("window", 10.0))
            quantile = float(item.get("quantile", 0.99))
            if window <= 0 or not 0 < quantile <= 1:
                raise ValueError("window must be > 0 and quantile in (0, 1]")
            checked.append({metrics[0]: float(item[metrics[0]]), "window": window,
                            "quantile": quantile})
        return tuple(checked)


_WINDOWED_METRICS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "error_rate")


class Scenario(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    target: Target = Field(default_factory=Target)
    load: Load
    message: Message = Field(default_factory=Message)
    capture: Capture = Field(default_factory=Capture)
    slo: Slo = Field(default_factory=Slo)
    faults: tuple[Fault, ...] = ()  # client-side fault injection (docs/protocols.md)
