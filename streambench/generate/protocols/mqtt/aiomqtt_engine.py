"""The aiomqtt engine: the same session shape as :class:`~.mqtt_wire.WireSession`.

Used for MQTT over WebSockets (``ws://``/``wss://`` URLs) and whenever a
scenario says ``mqtt_engine: aiomqtt``. aiomqtt connects, subscribes, handles
TLS, wills, keep-alive and the socket; the per-message path goes one level
down, to the paho-mqtt client aiomqtt wraps (``client._client`` in aiomqtt 2.x, the
only private name used, read in :func:`paho_client`; pyproject pins ``aiomqtt<3``):

* aiomqtt's ``publish`` waits for the broker's acknowledgement at QoS 1/2 and
  keeps a future, a timeout and an O(pending) scan per call; an open-model
  sender must not wait, so messages go through paho's ``publish``, which
  queues the packet and returns (no limit on messages in flight);
* aiomqtt hands each received message through an ``asyncio.Queue`` and a new
  task per ``messages`` step; here paho's ``on_message`` calls the reply
  matcher directly. ``client.messages`` is still read, and only tells us when
  the connection is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttCodeError, MqttConnectError, MqttError

from streambench.errors import ConfigError, TargetError, TargetUnreachable
from streambench.generate.protocols.base import os_reason
from streambench.generate.protocols.mqtt.session import OnMessage
from streambench.generate.protocols.mqtt.settings import MqttSettings


class AiomqttSession:
    """One MQTT connection through aiomqtt."""

    def __init__(self, settings: MqttSettings, *, on_message: OnMessage) -> None:
        self.settings = settings
        self.on_message = on_message
        self.client: aiomqtt.Client | None = None
        self.connected = False
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.session_present = False
        self._receiver: asyncio.Task[None] | None = None
        self._paho: Any = None

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        will = None
        if s.will is not None:
            will = aiomqtt.Will(s.will.topic, s.will.payload, s.will.qos, s.will.retain)
        v5 = s.version == "5"
        # paho refuses clean_start on 3.1.1 and clean_session on 5
        session: dict[str, Any] = {"clean_start": s.clean} if v5 else {"clean_session": s.clean}
        if s.dial is not None and s.tls:
            raise ConfigError("MQTT over wss:// through the fault proxy is not supported "
                              "(the TLS server name would be the proxy's); use mqtts://")
        host, port = s.dial or (s.host, s.port)  # the fault proxy, if any
        client = aiomqtt.Client(
            host, port, username=s.username, password=s.password, identifier=s.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=will, **session,
            transport="websockets" if s.scheme in ("ws", "wss") else "tcp",
            websocket_path=s.path if s.scheme in ("ws", "wss") else None,
            websocket_headers=s.headers or None,
            timeout=s.connect_timeout, keepalive=s.keepalive, tls_context=s.ssl_context(),
            max_inflight_messages=0,  # paho: 0 is no limit (its default, 20, throttles QoS 1)
        )
        return client

    async def connect(self) -> None:
        s = self.settings
        client = self._client()
        self._paho = paho_client(client)
        self._watch_connack(self._paho)
        try:
            await client.__aenter__()
        except MqttConnectError as exc:
            raise TargetError(f"MQTT broker {s.url} refused the connection: {exc}") from exc
        except MqttError as exc:
            raise TargetUnreachable(s.url, _reason(exc)) from exc
        self.client = client
        try:
            await client.subscribe(s.subscribe_topic, qos=s.qos)
        except MqttError as exc:
            await self.close()
            raise TargetError(f"MQTT broker {s.url} refused the subscription to "
                              f"{s.subscribe_topic!r}: {exc}") from exc
        self.connected = True
        self._paho.on_message = self._paho_message
        self._receiver = asyncio.create_task(self._receive(client),
                                             name=f"aiomqtt[{s.client_id}].receive")

    def _watch_connack(self, paho: Any) -> None:
        """Record CONNACK's session-present flag (aiomqtt drops it) on the way through."""
        aiomqtt_on_connect = paho.on_connect

        def on_connect(client: Any, userdata: Any, flags: Any, *args: Any) -> None:
            self.session_present = bool(getattr(flags, "session_present", False))
            aiomqtt_on_connect(client, userdata, flags, *args)

        paho.on_connect = on_connect

    def _paho_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if self.settings.correlation_data:
            data = getattr(message.properties, "CorrelationData", None)
            self.on_message(message.payload, time.monotonic_ns(), data)
            return
        self.on_message(message.payload, time.monotonic_ns())

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Wait for the connection to end (messages bypass the queue, see the docstring)."""
        reason = "connection closed"
        try:
            async for message in client.messages:  # only if a message slipped past paho
                self.on_message(bytes(message.payload), time.monotonic_ns())
        except MqttError as exc:
            reason = f"connection lost: {_reason(exc)}"
        finally:
            self.connected = False
            if not self.closed.done():
                self.closed.set_result(reason)

    def publish(self, payload: bytes, correlation: bytes | None = None) -> bool:
        if self.client is None or not self.connected:
            return False
        s = self.settings
        properties = None
        if correlation is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation
            properties.ResponseTopic = s.subscribe_topic
        info = self._paho.publish(s.publish_topic, payload, s.qos, s.retain,
                                  properties=properties)
        return bool(info.rc == 0)

    async def close(self) -> None:
        self.connected = False
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(MqttError, OSError, RuntimeError):
                await client.__aexit__(None, None, None)
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        if not self.closed.done():
            self.closed.set_result("closed")

    def abort(self) -> None:
        """Drop the TCP connection without DISCONNECT (the broker sends the will)."""
        client = self.client
        sock: Any = self._paho.socket() if client is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(2)


def paho_client(client: aiomqtt.Client) -> Any:
    """The paho-mqtt client inside an aiomqtt 2.x client (see the module docstring)."""
    paho = getattr(client, "_client", None)
    if paho is None or not hasattr(paho, "publish"):
        raise ConfigError(f"aiomqtt {aiomqtt.__version__} is not supported by the aiomqtt "
                          "engine (it needs aiomqtt 2.x); use target.mqtt_engine: wire")
    return paho


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MqttCodeError):
        return str(exc)
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError):
        return os_reason(cause)
    return str(exc) or type(exc).__name__
