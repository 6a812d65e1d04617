"""The fast MQTT engine: :mod:`~streambench.generate.protocols.mqtt.codec` on an asyncio Protocol.

Why it exists: with aiomqtt (over paho-mqtt) every message costs a paho
packet build and parse in Python, an ``asyncio.Queue`` hop and a task wake-up
on receive, and a future plus a timeout per QoS 1 publish, and the
acknowledgements go out one ``socket.send`` each. Here a publish is one
``transport.write`` of pre-encoded bytes that nobody waits on, and
:meth:`WireSession.data_received` handles every packet of a read in one go:
replies are matched on the spot and all acknowledgements of the read leave in
one write.

A session is one MQTT connection: :meth:`connect` (CONNECT, CONNACK,
SUBSCRIBE, SUBACK, keep-alive pings), :meth:`publish` (sync, never blocks),
:meth:`close` (DISCONNECT) or :meth:`abort`; :attr:`closed` resolves with
the reason when the connection ends. Incoming PUBLISH payloads go to
``on_message(payload, receive_mono_ns)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from streambench.errors import TargetError, TargetUnreachable
from streambench.generate.protocols.base import os_reason
from streambench.generate.protocols.mqtt import codec
from streambench.generate.protocols.mqtt.session import OnMessage
from streambench.generate.protocols.mqtt.settings import MqttSettings


class WireSession(asyncio.Protocol):
    """One MQTT connection driven by the lean codec (see the module docstring)."""

    def __init__(self, settings: MqttSettings, *, on_message: OnMessage) -> None:
        self.settings = settings
        self.on_message = on_message
        self.version = 5 if settings.version == "5" else 4
        self.publisher = codec.Publisher(settings.publish_topic, qos=settings.qos,
                                         retain=settings.retain, version=self.version)
        # room for the topic and MQTT 5 properties around the largest payload allowed
        self.reader = codec.PacketReader(max_size=settings.max_message_bytes + (64 << 10))
        self.transport: asyncio.Transport | None = None
        self.connected = False
        self.session_present = False
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # packet type -> its reply
        # incoming QoS 2 ids between PUBREC and PUBREL: bounded by the 16-bit id space
        self._qos2_in: set[int] = set()
        self._pinger: asyncio.Task[None] | None = None
        self._pongs = 0  # PINGRESP packets received

    # -- connecting -------------------------------------------------------------
    async def connect(self) -> None:
        """Open, CONNECT, SUBSCRIBE; raise TargetUnreachable / TargetError on failure."""
        s = self.settings
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(s.connect_timeout):
                host, port = s.dial or (s.host, s.port)  # the fault proxy, if any
                await loop.create_connection(lambda: self, host, port, ssl=s.ssl_context(),
                                             server_hostname=s.host if s.tls else None)
                await self._handshake()
        except TimeoutError as exc:
            self.abort()
            raise TargetUnreachable(s.url, f"no answer in {s.connect_timeout:g}s") from exc
        except OSError as exc:
            raise TargetUnreachable(s.url, os_reason(exc)) from exc
        except codec.ProtocolViolation as exc:
            self.abort()
            raise TargetError(f"MQTT broker {s.url} broke the protocol in the handshake: "
                              f"{exc}") from exc
        except BaseException:
            self.abort()
            raise
        self.connected = True
        if s.keepalive:
            self._pinger = loop.create_task(self._ping(s.keepalive),
                                            name=f"mqtt[{s.client_id}].ping")

    async def _handshake(self) -> None:
        s = self.settings
        connack = self._expect(codec.CONNACK)
        self._write(codec.connect_packet(
            s.client_id, version=self.version, clean=s.clean, keepalive=s.keepalive,
            username=s.username, password=s.password, will=s.will,
            session_expiry=0 if s.clean else s.session_expiry))
        self.session_present, code = codec.connack_fields(await self._until(connack))
        if code:
            reason = codec.CONNACK_REASONS.get(code, f"reason code {code:#x}")
            raise TargetError(f"MQTT broker {s.url} refused the connection: {reason}")
        suback = self._expect(codec.SUBACK)
        self._write(codec.subscribe_packet(1, s.subscribe_topic, qos=s.qos,
                                           version=self.version))
        codes = codec.suback_codes(await self._until(suback), version=self.version)
        if not codes or codes[0] >= 0x80:
            raise TargetError(f"MQTT broker {s.url} refused the subscription to "
                              f"{s.subscribe_topic!r}")

    def _expect(self, kind: int) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[kind] = future
        return future

    async def _until(self, reply: asyncio.Future[bytes]) -> bytes:
        """The reply, or TargetError if the connection closes first."""
        await asyncio.wait((reply, self.closed), return_when=asyncio.FIRST_COMPLETED)
        if reply.done():
            return reply.result()
        raise TargetError(f"MQTT broker {self.settings.url} closed the connection during the "
                          f"handshake: {self.closed.result()}")

    async def _ping(self, keepalive: int) -> None:
        """PINGREQ every half keep-alive; no PINGRESP by the next one: the connection is
        dead (half-open) and is ended, so the client reconnects."""
        answered: int | None = None
        while not self.closed.done():
            await asyncio.sleep(keepalive / 2)
            if answered is not None and self._pongs == answered and not self.closed.done():
                self._end(f"keepalive timeout: no PINGRESP within {keepalive / 2:g}s")
                return
            answered = self._pongs
            self._write(codec.PINGREQ_PACKET)

    # -- sending ----------------------------------------------------------------
    def publish(self, payload: bytes, correlation: bytes | None = None) -> bool:
        """Queue one PUBLISH; False when not connected (nothing was sent)."""
        transport = self.transport
        if transport is None or not self.connected:
            return False
        if correlation is None:
            transport.write(self.publisher.packet(payload)[0])
        else:
            transport.write(self.publisher.packet(
                payload, correlation=correlation,
                response_topic=self.settings.subscribe_topic)[0])
        return True

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def close(self) -> None:
        """DISCONNECT cleanly and wait for the socket to close (bounded)."""
        self.connected = False
        if not self.closed.done():
            self.closed.set_result("closed")
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(codec.DISCONNECT_PACKET)
            self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), 2.0)
        self.abort()

    def abort(self) -> None:
        self.connected = False
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.connected = False
        self.transport = None
        if self._pinger is not None:
            self._pinger.cancel()
        if not self.closed.done():
            self.closed.set_result("connection lost" if exc is None else f"connection lost: "
                                   f"{exc}")

    def data_received(self, data: bytes) -> None:
        """Handle every packet in ``data``; acknowledgements leave in one write."""
        now = time.monotonic_ns()
        acks: list[bytes] = []
        try:
            self._handle(self.reader.feed(data), now, acks)
        except (codec.ProtocolViolation, IndexError) as exc:  # garbage ends this connection
            self._violation(str(exc))
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))

    def _handle(self, packets: list[tuple[int, bytes]], now: int, acks: list[bytes]) -> None:
        version = self.version
        on_message = self.on_message
        for first, body in packets:
            kind = first >> 4
            if kind == codec.PUBLISH:
                _, packet_id, payload = codec.publish_fields(first, body, version=version)
                qos = (first >> 1) & 3
                if qos == 1:
                    acks.append(b"\x40\x02" + packet_id.to_bytes(2, "big"))
                elif qos == 2:
                    acks.append(codec.ack_packet(codec.PUBREC, packet_id))
                    if packet_id in self._qos2_in:
                        continue  # a redelivery before PUBREL: already handed on
                    self._qos2_in.add(packet_id)
                if self.settings.correlation_data and version == 5:
                    on_message(payload, now, codec.publish_correlation(first, body))
                else:
                    on_message(payload, now)
            elif kind != codec.PUBACK:
                self._control(kind, body, acks)

    def _control(self, kind: int, body: bytes, acks: list[bytes]) -> None:
        if kind == codec.PUBREC:
            acks.append(codec.ack_packet(codec.PUBREL, codec.packet_id_of(body, what="PUBREC")))
        elif kind == codec.PUBREL:
            packet_id = codec.packet_id_of(body, what="PUBREL")
            self._qos2_in.discard(packet_id)
            acks.append(codec.ack_packet(codec.PUBCOMP, packet_id))
        elif kind == codec.PINGRESP:
            self._pongs += 1
        elif kind == codec.DISCONNECT:
            reason = f"broker sent DISCONNECT (reason {body[0]:#x})" if body else \
                "broker sent DISCONNECT"
            self._end(reason)
        elif kind in self._waiting:
            future = self._waiting.pop(kind)
            if not future.done():
                future.set_result(body)

    def _violation(self, reason: str) -> None:
        self._end(f"protocol violation: {reason}")

    def _end(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        self.abort()
