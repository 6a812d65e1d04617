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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from streambench import limits
from streambench.scenario.faults import Fault
from streambench.scenario.network import NetworkFault
from streambench.scenario.secrets import template_problem
from streambench.scenario.synth import check_body, pool_problem

if TYPE_CHECKING:
    from streambench.scenario.proto import Method

# The built-in gRPC echo service's proto (streambench/target/grpc_echo.py serves it).
BUILTIN_PROTO = Path(__file__).resolve().parent.parent / "target" / "grpc_echo.proto"
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
    "grpc": ("grpc", "grpcs"),
}


HEADER_FIELDS = ("headers", "metadata")  # name -> value maps that may hold ${SECRETS}


class Will(_Model):
    """An MQTT last will: published by the broker when a connection is lost uncleanly."""

    topic: str  # may use {conn}
    payload: str = ""
    qos: Literal[0, 1, 2] = 0
    retain: bool = False


class _TargetBase(_Model):
    """What every target has: where it is and how long connecting may take."""

    url: str = "embedded"  # "embedded" starts the built-in target for the run
    connect_timeout: Duration = 5.0
    # proxy: through streambench's TCP fault proxy; unset: the proxy iff network_faults
    via: Literal["direct", "proxy"] | None = None

    @property
    def embedded(self) -> bool:
        return self.url == "embedded"

    def _secret_fields(self) -> list[tuple[tuple[str, ...], str | None]]:
        fields: list[tuple[tuple[str, ...], str | None]] = [(("url",), self.url)]
        for key in HEADER_FIELDS:
            headers: dict[str, str] = getattr(self, key, {})
            fields += [((key, name), value) for name, value in headers.items()]
        return fields

    @model_validator(mode="after")
    def _templates(self) -> _TargetBase:
        for loc, text in self._secret_fields():
            problem = None if text is None else template_problem(text)
            if problem is not None:
                raise FieldProblem(loc, problem)
        return self

    @model_validator(mode="after")
    def _url_fits_protocol(self) -> _TargetBase:
        # A URL that is a ${SECRET} template is checked when it is resolved.
        protocol = getattr(self, "protocol")  # noqa: B009 (every member has its tag)
        if self.embedded or self.url.startswith("${"):
            return self
        scheme = self.url.partition("://")[0].lower() if "://" in self.url else ""
        allowed = _URL_SCHEMES[protocol]
        if scheme not in allowed:
            schemes = " or ".join(f"{s}://" for s in allowed)
            embedded = "" if protocol == "mqtt" else "embedded or "
            raise FieldProblem(("url",), f"url {self.url!r} does not fit protocol "
                               f"{protocol}: expected {embedded}a {schemes} URL")
        return self

    @model_validator(mode="after")
    def _server_only_embedded(self) -> _TargetBase:
        server = getattr(self, "server", None)
        if server is not None and not self.embedded and server != ServerFaults():
            raise FieldProblem(("server",), "server fault knobs apply only to url: embedded "
                               "(the built-in target); against your own server use faults:")
        return self


class WebSocketTarget(_TargetBase):
    protocol: Literal["websocket"] = "websocket"
    headers: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    reconnect: Reconnect = Field(default_factory=Reconnect)
    max_message_bytes: int = Field(default=1 << 20, ge=1024)  # bigger frames are errors
    fallback: Literal["http"] | None = None  # a refused upgrade goes on over HTTP
    server: ServerFaults = Field(default_factory=ServerFaults)  # only for url: embedded


class MqttTarget(_TargetBase):
    """An MQTT broker (see docs/scenarios.md); there is no embedded broker."""

    protocol: Literal["mqtt"]
    url: str  # mqtt://, mqtts://, or MQTT over ws(s)://
    headers: dict[str, str] = Field(default_factory=dict)  # MQTT over ws(s):// only
    reconnect: Reconnect = Field(default_factory=Reconnect)
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

    def _secret_fields(self) -> list[tuple[tuple[str, ...], str | None]]:
        return [*super()._secret_fields(), (("username",), self.username),
                (("password",), self.password)]

    @model_validator(mode="after")
    def _not_embedded(self) -> MqttTarget:
        if self.embedded:
            raise FieldProblem(("url",), "the built-in target speaks WebSocket, HTTP and SSE, "
                               "not MQTT: give a broker URL such as mqtt://127.0.0.1:1883")
        if self.headers and self.url.lower().startswith(("mqtt://", "mqtts://")):
            raise FieldProblem(("headers",), "headers are sent in the WebSocket handshake: "
                               "they apply to MQTT over ws:// or wss:// only")
        return self


class HttpTarget(_TargetBase):
    """Request/response over HTTP: each message is one request."""

    protocol: Literal["http"]
    headers: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    method: str = "POST"
    # lean (plain http://, keep-alive, httptools' C parser; the fastest), aiohttp
    # (complete: TLS, redirects); auto: lean for http://, aiohttp for https://
    http_engine: Literal["auto", "lean", "aiohttp"] = "auto"
    server: ServerFaults = Field(default_factory=ServerFaults)  # only for url: embedded


class SseTarget(_TargetBase):
    """A server-sent-events stream: pushed events are received, nothing is sent."""

    protocol: Literal["sse"]
    headers: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    reconnect: Reconnect = Field(default_factory=Reconnect)
    server: ServerFaults = Field(default_factory=ServerFaults)  # only for url: embedded


def scenario_path(value: str, info: ValidationInfo) -> str:
    """A file path as written in a scenario, made absolute: relative to the scenario
    file's directory (``context["base_dir"]``, given by the loader), else to the
    working directory."""
    base = (info.context or {}).get("base_dir") if info.context is not None else None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(base or ".").resolve() / path)


class GrpcTls(_Model):
    """TLS for ``grpcs://``: what to trust and, for mutual TLS, who we are (PEM files)."""

    ca: str | None = None  # CA certificate(s) to trust; None: the system's roots
    cert: str | None = None  # client certificate chain (mutual TLS), with key
    key: str | None = None  # its private key
    server_name: str | None = None  # name to verify in the server's certificate

    @field_validator("ca", "cert", "key", mode="after")
    @classmethod
    def _relative_to_scenario(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else scenario_path(value, info)

    @model_validator(mode="after")
    def _cert_with_key(self) -> GrpcTls:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            raise FieldProblem((missing,), "mutual TLS needs both cert and key")
        return self


_METADATA_KEY = re.compile(r"^[a-z0-9_.-]+$")


class GrpcTarget(_TargetBase):
    """A gRPC service: ``method`` of ``service`` in the ``proto`` file (docs/protocols.md).

    The proto is compiled when the scenario is loaded (a wrong file, service or
    method is a validation error); paths are relative to the scenario file.
    """

    protocol: Literal["grpc"]
    proto: str = Field(default=str(BUILTIN_PROTO))  # default: the built-in echo service's
    proto_paths: tuple[str, ...] = ()  # more directories for the proto's imports
    service: str | None = None  # full or short name; None: the proto's only service
    method: str
    metadata: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    tls: GrpcTls | None = None  # for grpcs:// (which alone uses the system's roots)
    deadline: Duration | None = Field(default=None, gt=0)  # per call; bidi: per stream
    reconnect: Reconnect = Field(default_factory=Reconnect)
    max_message_bytes: int = Field(default=4 << 20, ge=1024)  # bigger replies are errors
    server: ServerFaults = Field(default_factory=ServerFaults)  # only for url: embedded

    @field_validator("proto", mode="after")
    @classmethod
    def _proto_path(cls, value: str, info: ValidationInfo) -> str:
        return scenario_path(value, info)

    @field_validator("proto_paths", mode="after")
    @classmethod
    def _include_paths(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return tuple(scenario_path(v, info) for v in value)

    @field_validator("metadata", mode="after")
    @classmethod
    def _metadata_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _METADATA_KEY.match(key) or key.endswith("-bin"):
                raise FieldProblem((key,), f"metadata key {key!r}: expected lower-case "
                                   "letters, digits, '-', '_' or '.' (text values only, "
                                   "no -bin keys)")
        return value

    @model_validator(mode="after")
    def _tls_needs_grpcs(self) -> GrpcTarget:
        if self.tls is not None and self.url.lower().startswith("grpc://"):
            raise FieldProblem(("tls",), "TLS settings need a grpcs:// URL")
        return self

    @model_validator(mode="after")
    def _method_in_proto(self) -> GrpcTarget:
        rpc = self.rpc()
        if rpc.kind == "client_stream":
            raise FieldProblem(("method",), f"{rpc.name} is a client-streaming method; "
                               "streambench calls unary, server-streaming and "
                               "bidirectional-streaming methods")
        return self

    def rpc(self) -> Method:
        """The compiled method (cached per proto file); raises FieldProblem when wrong."""
        from streambench.scenario.proto import ProtoProblem, compile_proto

        try:
            return compile_proto(self.proto, include=self.proto_paths).method(
                self.service, self.method)
        except ProtoProblem as exc:
            raise FieldProblem((exc.field,), str(exc)) from None


def server_knobs(target: _TargetBase) -> ServerFaults:
    """The built-in target's fault knobs a scenario asks for (none for MQTT)."""
    knobs = getattr(target, "server", None)
    return knobs if isinstance(knobs, ServerFaults) else ServerFaults()


Target = Annotated[WebSocketTarget | MqttTarget | HttpTarget | SseTarget | GrpcTarget,
                   Field(discriminator="protocol")]
"""One model per protocol: a key that does nothing for a protocol is an error.
``protocol`` may be left out: websocket (see :meth:`Scenario._default_protocol`)."""


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


LATENCY_OBJECTIVES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
WINDOWED_METRICS = (*LATENCY_OBJECTIVES, "error_rate")


class WindowObjective(_Model):
    """``{p95_ms: 50, window: 10s, quantile: 0.99}``: the metric stays within its limit
    in at least ``quantile`` of the ``window``-long windows of a run."""

    metric: Literal["p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "error_rate"]
    limit: float = Field(ge=0)
    window: Duration = Field(default=10.0, gt=0)
    quantile: float = Field(default=0.99, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        """``{p95_ms: 50, ...}`` as written in YAML -> ``{metric: p95_ms, limit: 50, ...}``."""
        if not isinstance(data, dict) or "metric" in data:
            return data
        metrics = [k for k in data if k in WINDOWED_METRICS]
        if len(metrics) != 1:
            found = f"got {', '.join(metrics)}" if metrics else "got none"
            raise ValueError(f"each window needs exactly one of {', '.join(WINDOWED_METRICS)} "
                             f"({found}), plus window and quantile")
        limit = data[metrics[0]]
        if isinstance(limit, bool) or not isinstance(limit, int | float) or \
                not math.isfinite(limit) or limit < 0:
            raise ValueError(f"{metrics[0]}: expected a number >= 0, got {limit!r}")
        rest = {k: v for k, v in data.items() if k != metrics[0]}
        return {"metric": metrics[0], "limit": limit, **rest}

    @model_serializer
    def _to_yaml(self) -> dict[str, Any]:
        return {self.metric: self.limit, "window": self.window, "quantile": self.quantile}


class Slo(_Model):
    """Service-level objectives, judged by ``streambench slo`` (docs/analysis.md)."""

    p50_ms: float | None = Field(default=None, gt=0)
    p90_ms: float | None = Field(default=None, gt=0)
    p95_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    max_ms: float | None = Field(default=None, gt=0)
    error_rate: Probability | None = None
    min_throughput: float | None = Field(default=None, ge=0)  # received messages/s
    windows: tuple[WindowObjective, ...] = ()


class Scenario(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    target: Target = Field(default_factory=WebSocketTarget)
    load: Load
    message: Message = Field(default_factory=Message)
    capture: Capture = Field(default_factory=Capture)
    slo: Slo = Field(default_factory=Slo)
    faults: tuple[Fault, ...] = ()  # client-side fault injection (docs/protocols.md)
    network_faults: tuple[NetworkFault, ...] = ()  # through the proxy (docs/network-faults.md)

    @property
    def proxied(self) -> bool:
        """True when the run goes through the fault proxy (``via: proxy`` or network faults)."""
        return self.target.via == "proxy" or bool(self.network_faults)

    @model_validator(mode="after")
    def _network_needs_proxy(self) -> Scenario:
        if self.network_faults and self.target.via == "direct":
            raise FieldProblem(("target", "via"), "network_faults go through the fault proxy: "
                               "remove via: direct (or the network_faults)")
        return self

    @model_validator(mode="after")
    def _grpc_messages(self) -> Scenario:
        """A gRPC scenario's body and correlation fields fit the method's messages."""
        if not isinstance(self.target, GrpcTarget):
            return self
        from streambench.scenario.proto import ProtoProblem, correlation_fields, encode_body
        from streambench.scenario.synth import render

        rpc = self.target.rpc()
        message = self.message
        try:
            correlation_fields(rpc, cid_field=message.cid_field, seq_field=message.seq_field)
            encode_body(rpc, render(message.body, seed=self.seed))
        except ProtoProblem as exc:
            raise FieldProblem(tuple(exc.field.split(".")), str(exc)) from None
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_protocol(cls, data: Any) -> Any:
        """A target that says no ``protocol`` is a WebSocket target."""
        if isinstance(data, dict) and isinstance(data.get("target"), dict) \
                and "protocol" not in data["target"]:
            return {**data, "target": {"protocol": "websocket", **data["target"]}}
        return data
