"""One MQTT connection's settings, resolved from the scenario's ``target``.

Built when a connection opens: ``${ENV}`` secrets in the URL, username and
password are resolved here and live only in this in-memory object. Topic
templates take ``{conn}`` (the global connection index). The client id is
``streambench-<pid>-<conn>``: stable across reconnects of one run (so a
persistent session resumes), distinct between runs in parallel.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from streambench.errors import ConfigError
from streambench.generate.protocols.mqtt.codec import WillMessage
from streambench.scenario.model import MqttTarget
from streambench.scenario.secrets import resolve

SESSION_EXPIRY_S = 3600  # MQTT 5 persistent sessions outlive a disconnect by this much
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class MqttSettings:
    url: str  # as resolved; error messages name it (never holds the password)
    scheme: str  # mqtt, mqtts, ws, wss
    host: str
    port: int
    path: str  # for MQTT over WebSockets
    client_id: str
    version: Literal["3.1.1", "5"]
    clean: bool
    keepalive: int
    username: str | None
    password: str | None
    tls: bool
    publish_topic: str
    subscribe_topic: str
    qos: int
    retain: bool
    will: WillMessage | None
    connect_timeout: float
    headers: dict[str, str] = field(default_factory=dict)  # MQTT over WebSockets; resolved
    max_message_bytes: int = 1 << 20  # a bigger incoming packet ends the connection
    session_expiry: int = SESSION_EXPIRY_S
    correlation_data: bool = False  # MQTT 5: ids travel as correlation data
    dial: tuple[str, int] | None = None  # the fault proxy's address, when the run has one

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None

    def __repr__(self) -> str:  # never print the password
        return f"MqttSettings(url={self.url!r}, client_id={self.client_id!r})"


def mqtt_settings(target: MqttTarget, *, url: str, conn: int, heartbeat: float | None,
                  headers: dict[str, str] | None = None,
                  variables: Mapping[str, Any] | None = None,
                  dial: tuple[str, int] | None = None) -> MqttSettings:
    """Settings for global connection ``conn``; ``url`` and ``headers`` are resolved."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"target.url: not an MQTT URL: {url!r} (expected mqtt://host:port)")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigError(f"target.url: bad port in {url!r}") from exc
    # The URL is resolved already; user and password fields win over ones in the URL.
    username = parts.username if target.username is None else resolve(
        target.username, field="target.username")
    password = parts.password if target.password is None else resolve(
        target.password, field="target.password")
    will = None
    if target.will is not None:
        will = WillMessage(topic=_topic(target.will.topic, conn, "target.will.topic"),
                           payload=target.will.payload.encode(), qos=target.will.qos,
                           retain=target.will.retain)
    values = dict(variables or {})
    publish = _topic(target.publish, conn, "target.publish", values)
    subscribe = publish if target.subscribe is None else _topic(target.subscribe, conn,
                                                                 "target.subscribe", values)
    return MqttSettings(
        url=f"{scheme}://{parts.hostname}:{port}", scheme=scheme, host=parts.hostname,
        port=port, path=parts.path or "/mqtt", client_id=f"streambench-{os.getpid()}-{conn}",
        version=target.mqtt_version, clean=target.clean_session,
        keepalive=round(heartbeat) if heartbeat else 60, username=username,
        password=password,
        tls=target.tls or scheme in ("mqtts", "wss"), publish_topic=publish,
        subscribe_topic=subscribe, qos=target.qos, retain=target.retain, will=will,
        connect_timeout=target.connect_timeout, headers=dict(headers or {}),
        max_message_bytes=target.max_message_bytes,
        correlation_data=target.correlation_data, dial=dial,
    )


def _topic(template: str, conn: int, field: str, variables: Mapping[str, Any] | None = None
           ) -> str:
    try:
        topic = template.format(**{**(variables or {}), "conn": conn})
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{field}: bad topic template {template!r}: only {{conn}} and the "
                          "scenario's variables may be used") from exc
    wildcard = field != "target.subscribe" and ("#" in topic or "+" in topic)
    if not topic or wildcard:
        raise ConfigError(f"{field}: {topic!r} is not a topic one can publish to")
    return topic
