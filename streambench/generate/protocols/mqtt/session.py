"""The seam between the MQTT client and its two engines (wire and aiomqtt)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from streambench.generate.protocols.mqtt.settings import MqttSettings

OnMessage = Callable[..., None]  # (payload, receive time in monotonic ns[, correlation data])


class MqttSession(Protocol):
    """One MQTT connection, subscribed, as the client drives it.

    Built as ``Engine(settings, on_message=...)``; ``connect()`` opens,
    CONNECTs and SUBSCRIBEs (raising TargetUnreachable or TargetError), after
    which ``session_present`` tells whether the broker resumed a persistent
    session. ``on_message`` is called synchronously for every PUBLISH
    received; ``closed`` resolves to the reason once the connection is gone.
    """

    settings: MqttSettings
    session_present: bool
    closed: asyncio.Future[str]

    def __init__(self, settings: MqttSettings, *, on_message: OnMessage) -> None: ...

    async def connect(self) -> None: ...

    def publish(self, payload: bytes, correlation: bytes | None = None) -> bool:
        """Queue one PUBLISH (MQTT 5: ``correlation`` as its correlation data);
        False when not connected (nothing was sent)."""

    async def close(self) -> None:
        """DISCONNECT cleanly and wait for the socket to close."""

    def abort(self) -> None:
        """Drop the socket without DISCONNECT (the broker publishes the will)."""
