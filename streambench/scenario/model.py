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

import contextlib
import ipaddress
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SkipValidation,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from streambench import limits
from streambench.scenario.conversation import (
    DEFINED_NAMES,
    NAME,
    Fanout,
    Replies,
    Step,
    Variable,
    defined_names,
    path_problem,
)
from streambench.scenario.conversation import FieldProblem as FieldProblem  # noqa: PLC0414
from streambench.scenario.durations import Duration as Duration  # noqa: PLC0414
from streambench.scenario.durations import parse_duration as parse_duration  # noqa: PLC0414
from streambench.scenario.faults import Fault
from streambench.scenario.fit import PRESET_IDS, check_conversation
from streambench.scenario.network import NetworkFault
from streambench.scenario.secrets import template_problem
from streambench.scenario.streams import PushStream
from streambench.scenario.synth import (
    ANY_NAME,
    BUILTIN,
    check_body,
    placeholder_names,
    pool_problem,
)

if TYPE_CHECKING:
    from streambench.scenario.proto import Method

# The built-in gRPC echo service's proto (streambench/target/grpc_echo.py serves it).
BUILTIN_PROTO = Path(__file__).resolve().parent.parent / "target" / "grpc_echo.proto"
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


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


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110)


def header_problem(name: str, value: str) -> str | None:
    """What is wrong with one HTTP header, or None. Values are checked after ``${...}``
    are resolved too: a CR or LF would start a header (or a request) of its own."""
    if not _TOKEN.match(name):
        return f"header name {name!r} is not a valid HTTP field name"
    if any(c in value for c in "\r\n\0"):
        return "a header value must not contain CR, LF or NUL"
    if not value.isascii():
        return "a header value must be ASCII (percent-encode or base64 other text)"
    return None


class _TargetBase(_Model):
    """What every target has: where it is and how long connecting may take."""

    url: str = "embedded"  # "embedded" starts the built-in target for the run
    connect_timeout: Duration = 5.0
    max_message_bytes: int = Field(default=1 << 20, ge=1024)  # bigger replies are errors
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
        for name, value in getattr(self, "headers", {}).items():
            problem = header_problem(name, value)
            if problem is not None:
                raise FieldProblem(("headers", name), problem)
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


def _source_address(entry: str) -> str:
    """An address, a network or an interface name (resolved on the machine that runs)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(entry)
        return entry
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a network such as 127.0.0.0/29") from None
        return entry
    if not _INTERFACE.fullmatch(entry):
        raise ValueError(f"expected an address (127.0.0.2), a network (127.0.0.0/29) or an "
                         f"interface name (eth0), got {entry!r}")
    return entry


_INTERFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
SourceAddress = Annotated[str, AfterValidator(_source_address)]


class WebSocketTarget(_TargetBase):
    protocol: Literal["websocket"] = "websocket"
    headers: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    reconnect: Reconnect = Field(default_factory=Reconnect)
    fallback: Literal["http"] | None = None  # a refused upgrade goes on over HTTP
    server: ServerFaults = Field(default_factory=ServerFaults)  # only for url: embedded
    subprotocols: tuple[str, ...] = ()  # offered in the handshake (Sec-WebSocket-Protocol)
    on_connect: tuple[Step, ...] = ()  # set-up steps on every connect and reconnect
    # local addresses the connections are opened from, round robin (docs/scale.md):
    # one address reaches one target host:port at most ~28K times (the ephemeral ports)
    source_addresses: tuple[SourceAddress, ...] = ()


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
    # MQTT 5: the id travels as the publish's correlation data (and the subscribe
    # topic as its response topic); replies are matched by theirs
    correlation_data: bool = False

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
        if self.correlation_data and self.mqtt_version != "5":
            raise FieldProblem(("correlation_data",), "correlation data is an MQTT 5 "
                               "property: set mqtt_version: \"5\"")
        return self


class HttpTarget(_TargetBase):
    """Request/response over HTTP: each message is one request."""

    protocol: Literal["http"]
    headers: dict[str, str] = Field(default_factory=dict)  # values may be ${SECRETS}
    method: str = Field(default="POST", pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
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
    """What is sent: ``message:`` (one kind), or each entry of ``messages:`` (a weighted mix).

    ``body`` is a JSON object, or a text sent as a raw text frame. The correlation
    id is added at ``cid_field`` (a path; null: nothing added) as text
    (``cid_type: string``, ``"<conn>-<seq>"``) or a number (``integer``); the
    sequence number at ``seq_field`` (null: not added). ``{{cid}}``, ``{{seq}}``,
    ``{{conn}}`` and ``{{variables}}`` may also be written anywhere in the body.
    """

    name: str = Field(default="message", pattern=NAME)  # a Socket.IO event's name
    weight: float = Field(default=1.0, gt=0)  # share of the mix in messages:
    body: Annotated[dict[str, Any] | str, SkipValidation] = Field(
        default_factory=lambda: {"text": "{{sentence}}"})
    cid_field: FieldName | None = "cid"
    cid_type: Literal["string", "integer"] = "string"
    seq_field: FieldName | None = "seq"
    # None: reply (a preset may say); fanout: delivered to the other members of a group
    expect: Literal["reply", "none", "stream", "fanout"] | None = None
    pool: int = Field(default=1024, ge=1)  # distinct synthetic bodies to cycle through

    @field_validator("body", mode="before")
    @classmethod
    def _body_type(cls, value: Any) -> Any:
        if not isinstance(value, dict | str):
            raise ValueError(f"expected a mapping (a JSON object) or text (a raw text frame), "
                             f"got {type(value).__name__}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _text_body(cls, data: Any) -> Any:
        """A text body has no fields: nothing is added unless the scenario says where."""
        if isinstance(data, dict) and isinstance(data.get("body"), str):
            return {"cid_field": None, "seq_field": None, **data}
        return data

    @model_validator(mode="after")
    def _placeholders(self) -> Message:
        for key in ("cid_field", "seq_field"):
            path = getattr(self, key)
            if path is None:
                continue
            if isinstance(self.body, str):
                raise FieldProblem((key,), "a text body has no fields: write {{cid}} / {{seq}} "
                                   f"where they go, or set {key}: null")
            problem = path_problem(path) or _insert_problem(self.body, path)
            if problem is not None:
                raise FieldProblem((key,), problem)
        # Raises synth.BodyProblem (a ValueError carrying every problem with its
        # position in the body); the loader expands it into one Problem each.
        defined = DEFINED_NAMES.get()
        names = ANY_NAME if defined is None else frozenset({*BUILTIN, *defined})
        check_body(self.body, cid_field=self.cid_field, seq_field=self.seq_field, names=names)
        problem = pool_problem(self.body, self.pool)
        if problem is not None:
            raise FieldProblem(("pool",), problem)
        return self

    @property
    def carries_id(self) -> bool:
        """The request carries its correlation id (at cid_field or as {{cid}})."""
        return self.cid_field is not None or "cid" in {name for _, name in
                                                       placeholder_names(self.body)}


def _insert_problem(body: dict[str, Any], path: str) -> str | None:
    node: Any = body
    for part in path.split(".")[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
        if not isinstance(node, dict):
            return f"cannot add {path!r}: {part!r} in the body is not an object"
    return None


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
    # small parts merged every this often during a run (0: only at its end); docs/operations.md
    compact_every: Duration = Field(default=300.0, ge=0)


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
    messages: tuple[Message, ...] = ()  # a weighted mix of kinds instead of one message
    replies: Replies = Field(default_factory=Replies)  # how replies are read (docs/backends.md)
    stream: PushStream = Field(default_factory=PushStream)  # what pushes carry (docs/backends.md)
    variables: dict[str, Variable] = Field(default_factory=dict)  # per connection
    preset: Literal["jsonrpc", "graphql-ws", "socketio"] | None = None
    network_faults: tuple[NetworkFault, ...] = ()  # through the proxy (docs/network-faults.md)
    fanout: Fanout | None = None  # groups for expect: fanout kinds (docs/backends.md#fan-out)

    def kinds(self) -> tuple[Message, ...]:
        """The message kinds: ``messages``, or ``message`` alone."""
        return self.messages or (self.message,)

    @property
    def fans_out(self) -> bool:
        """Some message kind is a fan-out (``expect: fanout``)."""
        return any(k.expect == "fanout" for k in self.kinds())

    def reply_id(self) -> str | None:
        """Where answers carry the id: ``replies.id``, else the path the requests use;
        None when answers are matched in order (or by MQTT 5 correlation data)."""
        if self.replies.id is not None or self.replies.in_order:
            return self.replies.id
        paths = {k.cid_field for k in self.kinds() if k.expect != "none" and k.carries_id}
        return next(iter(paths)) if len(paths) == 1 else None

    def looked_for(self) -> str:
        """What an answer had to carry, in words (the summary shows it when none matched)."""
        if self.preset is not None:
            return PRESET_IDS[self.preset]
        if getattr(self.target, "correlation_data", False):
            return "the request's id in the reply's MQTT 5 correlation data"
        path = self.reply_id()
        if path is None:
            return "any reply, each answering the oldest message in flight (in order)"
        shapes = {"a number such as 3000000017" if k.cid_type == "integer" else
                  'text such as "3-17"' for k in self.kinds() if k.expect != "none"}
        return f"the request's id at {path!r} ({' or '.join(sorted(shapes))})"

    @model_validator(mode="wrap")
    @classmethod
    def _with_names(cls, data: Any, handler: ModelWrapValidatorHandler[Scenario]) -> Scenario:
        """Bodies are validated knowing the scenario's variables and captured names."""
        token = DEFINED_NAMES.set(defined_names(data))
        try:
            return handler(data)
        finally:
            DEFINED_NAMES.reset(token)

    @model_validator(mode="after")
    def _conversation(self) -> Scenario:
        check_conversation(self)  # how messages, replies, steps and variables fit
        return self

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
        # check_conversation (run first) holds gRPC to one object body with both fields
        assert isinstance(message.body, dict)
        assert message.cid_field is not None
        assert message.seq_field is not None
        for key in ("cid_field", "seq_field"):
            if "." in getattr(message, key):
                raise FieldProblem(("message", key), "a gRPC request carries it in a field of "
                                   "its own: a field name, not a path")
        try:
            correlation_fields(rpc, cid_field=message.cid_field, seq_field=message.seq_field,
                               reply_id=self.replies.id)
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
