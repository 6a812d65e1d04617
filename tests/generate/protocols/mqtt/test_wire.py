"""The wire engine against a scripted broker: QoS 2 exactly once, limits, hostile brokers.

mosquitto is well behaved; these cases need a broker that is not. The fake
broker is a plain asyncio server on 127.0.0.1 that answers CONNECT and
SUBSCRIBE (or not, or badly) and then sends what the test scripts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import polars as pl
import pytest

from streambench.api import run_async
from streambench.capture.store import Store
from streambench.errors import TargetError
from streambench.generate.protocols.mqtt import codec
from streambench.generate.protocols.mqtt.settings import MqttSettings
from streambench.generate.protocols.mqtt.wire import WireSession
from streambench.scenario.model import Scenario
from tests.helpers import TIME_SCALE, scenario

CONNACK_OK = b"\x20\x02\x00\x00"
SUBACK_QOS2 = b"\x90\x03\x00\x01\x02"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeBroker:
    """MQTT 3.1.1 as scripted: ``connack``/``suback`` bytes, then ``script`` runs."""

    def __init__(self, *, connack: bytes = CONNACK_OK, suback: bytes = SUBACK_QOS2,
                 script: Script | None = None) -> None:
        self.connack, self.suback, self.script = connack, suback, script
        self.received: list[tuple[int, bytes]] = []  # packets the client sent after SUBSCRIBE
        self.done = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        packets = codec.PacketReader()
        try:
            await self._expect(reader, packets, codec.CONNECT)
            writer.write(self.connack)
            await self._expect(reader, packets, codec.SUBSCRIBE)
            writer.write(self.suback)
            if self.script is not None:
                await self.script(reader, writer)
            while data := await reader.read(65536):
                self.received += packets.feed(data)
                self.done.set()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, re-checked whenever the client sends."""
        async with asyncio.timeout(5 * TIME_SCALE):
            while True:
                self.done.clear()
                if condition():
                    return
                await self.done.wait()

    @staticmethod
    async def _expect(reader: asyncio.StreamReader, packets: codec.PacketReader, kind: int
                      ) -> None:
        found: list[tuple[int, bytes]] = []
        while not any(first >> 4 == kind for first, _ in found):
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("client went away")
            found += packets.feed(data)


@pytest.fixture
async def broker() -> AsyncIterator[Callable[..., Awaitable[tuple[FakeBroker, MqttSettings]]]]:
    servers: list[asyncio.Server] = []

    async def start(**kwargs: object) -> tuple[FakeBroker, MqttSettings]:
        fake = FakeBroker(**kwargs)  # type: ignore[arg-type]
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        settings = MqttSettings(
            url=f"mqtt://127.0.0.1:{port}", scheme="mqtt", host="127.0.0.1", port=port,
            path="/mqtt", client_id="test-0", version="3.1.1", clean=True, keepalive=0,
            username=None, password=None, tls=False, publish_topic="up/0",
            subscribe_topic="down/0", qos=2, retain=False, will=None, connect_timeout=2.0,
            max_message_bytes=4096)
        return fake, settings

    yield start
    for server in servers:
        server.close()


def publish(packet_id: int, payload: bytes, *, qos: int = 2, dup: bool = False) -> bytes:
    first = 0x30 | (qos << 1) | (0x08 if dup else 0)
    return codec._packet(first, b"\x00\x06down/0" + packet_id.to_bytes(2, "big") + payload)


async def test_qos2_is_delivered_exactly_once_and_completed(broker) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(publish(7, b"one"))
        writer.write(publish(7, b"one", dup=True))  # a redelivery before PUBREL
        writer.write(codec.ack_packet(codec.PUBREL, 7))
        writer.write(publish(7, b"two"))  # the id is free again after PUBCOMP

    fake, settings = await broker(script=script)
    delivered: list[bytes] = []
    session = WireSession(settings, on_message=lambda payload, now: delivered.append(payload))
    await session.connect()
    await fake.until(lambda: any(first >> 4 == codec.PUBCOMP for first, _ in fake.received))
    await session.close()
    assert delivered == [b"one", b"two"]
    kinds = [first >> 4 for first, _ in fake.received]
    assert kinds.count(codec.PUBREC) == 3  # every PUBLISH acknowledged, the copy too
    assert kinds.count(codec.PUBCOMP) == 1
    assert session._qos2_in == {7}  # awaiting the second PUBREL


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"connack": b"\x20\x01\x00"}, "broke the protocol in the handshake: CONNACK shorter"),
    ({"connack": b"\x20\x02\x00\x05"}, "refused the connection: not authorized"),
    ({"suback": b"\x90\x01\x00"}, "broke the protocol in the handshake: SUBACK without"),
    ({"suback": b"\x90\x03\x00\x01\x80"}, "refused the subscription"),
])
async def test_a_hostile_broker_in_the_handshake_is_one_target_error(broker, kwargs, message
                                                                      ) -> None:
    _, settings = await broker(**kwargs)
    session = WireSession(settings, on_message=lambda payload, now: None)
    with pytest.raises(TargetError, match=message):
        await session.connect()


@pytest.mark.parametrize(("garbage", "reason"), [
    (b"\x32\x03\x00\x05t", "PUBLISH"),  # a topic longer than the packet
    (b"\x30" + codec.varint(1 << 20), "over the limit of"),  # 1 MiB announced, 4 KiB allowed
])
async def test_garbage_after_the_handshake_ends_the_connection_with_its_reason(
        broker, garbage: bytes, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(publish(1, b"ok"))
        # its PUBREC says the handshake is over and "ok" was handled: now the garbage
        await FakeBroker._expect(reader, codec.PacketReader(), codec.PUBREC)
        writer.write(garbage)

    _, settings = await broker(script=script)
    delivered: list[bytes] = []
    session = WireSession(settings, on_message=lambda payload, now: delivered.append(payload))
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        await session.connect()
        closed = await asyncio.wait_for(session.closed, 5)
    assert closed.startswith("protocol violation:")
    assert reason in closed
    assert delivered == [b"ok"]
    assert not [r for r in caplog.records if "Fatal error" in r.getMessage()]


def run_against(port: int, **load: object) -> Scenario:
    return scenario(target={"protocol": "mqtt", "url": f"mqtt://127.0.0.1:{port}",
                            "mqtt_version": "3.1.1", "publish": "up/{conn}",
                            "subscribe": "down/{conn}", "qos": 1,
                            "reconnect": {"initial": "50ms", "max": "100ms"}},
                    load={"connections": 1, "rate": 20, "duration": "500ms", **load})


async def test_a_run_against_a_short_connack_fails_in_one_line(broker, store: Store) -> None:
    """Issue 16 item 11, as a user meets it: no ProtocolViolation traceback, the run's
    manifest says failed and why."""
    _, settings = await broker(connack=b"\x20\x01\x00")
    with pytest.raises(TargetError, match="broke the protocol in the handshake") as caught:
        await run_async(run_against(settings.port), store=store)
    assert "\n" not in str(caught.value)
    [manifest] = store.runs()
    assert manifest["status"] == "failed"
    assert "broke the protocol" in manifest["error"]


async def test_a_malformed_publish_mid_run_is_an_error_row_not_a_fatal_error(
        broker, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 16 item 11: a PUBLISH whose topic runs past its packet, mid-run, ends that
    connection with its reason on record; the run goes on and says what happened."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await FakeBroker._expect(reader, codec.PacketReader(), codec.PUBLISH)
        writer.write(b"\x32\x03\x00\x05t")

    _, settings = await broker(script=script)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        result = await run_async(run_against(settings.port), store=store)
    events = store.events(result.run_id).collect()
    violations = events.filter(pl.col("error").str.contains("protocol violation"))
    assert violations.height >= 1
    assert "PUBLISH" in violations["error"][0]
    assert result.summary["sent"] > 0
    assert not [r for r in caplog.records if "Fatal error" in r.getMessage()]
