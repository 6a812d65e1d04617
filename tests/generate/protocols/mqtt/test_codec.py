"""The lean MQTT codec without sockets: packets in and out, split anywhere."""

from __future__ import annotations

import pytest

from streambench.generate.protocols.mqtt import codec


def test_varint_matches_the_spec_examples():
    assert codec.varint(0) == b"\x00"
    assert codec.varint(127) == b"\x7f"
    assert codec.varint(128) == b"\x80\x01"
    assert codec.varint(16_383) == b"\xff\x7f"
    assert codec.varint(2_097_152) == b"\x80\x80\x80\x01"


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_round_trips_through_the_reader(version, qos):
    publisher = codec.Publisher("devices/3/up", qos=qos, retain=False, version=version)
    payloads = [b'{"cid":"3-1"}', b"x" * 300, b""]
    stream = b""
    ids = []
    for payload in payloads:
        packet, packet_id = publisher.packet(payload)
        stream += packet
        ids.append(packet_id)
    assert ids == ([0, 0, 0] if qos == 0 else [1, 2, 3])
    packets = codec.PacketReader().feed(stream)
    assert [first >> 4 for first, _ in packets] == [codec.PUBLISH] * 3
    for (first, body), payload, packet_id in zip(packets, payloads, ids, strict=True):
        assert (first >> 1) & 3 == qos
        assert codec.publish_fields(first, body, version=version) == (
            b"devices/3/up", packet_id, payload)


def test_the_reader_reassembles_packets_split_at_every_byte():
    publisher = codec.Publisher("t", qos=1, retain=True, version=5)
    stream = b"".join(publisher.packet(b"m" * n)[0] for n in (1, 200, 20_000))
    reader = codec.PacketReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i:i + 1])
    assert [len(codec.publish_fields(f, b, version=5)[2]) for f, b in got] == [1, 200, 20_000]
    assert all(f & 1 for f, _ in got)  # retain flag


def test_packet_ids_wrap_after_65535():
    publisher = codec.Publisher("t", qos=1, retain=False, version=4)
    publisher.next_id = 65_534
    assert [publisher.packet(b"")[1] for _ in range(3)] == [65_535, 1, 2]


def test_connect_carries_credentials_will_and_session_expiry():
    will = codec.WillMessage(topic="dead/1", payload=b"gone", qos=1, retain=True)
    packet = codec.connect_packet("sb-1", version=5, clean=False, keepalive=30,
                                  username="u", password="p", will=will, session_expiry=60)
    (first, body), = codec.PacketReader().feed(packet)
    assert first == 0x10
    assert body[:7] == b"\x00\x04MQTT\x05"
    flags = body[7]
    assert flags & 0xC0 == 0xC0  # user name and password
    assert flags & 0x02 == 0  # persistent session
    assert flags & 0x04  # a will...
    assert (flags >> 3) & 3 == 1  # ...at QoS 1...
    assert flags & 0x20  # ...retained
    assert b"\x11\x00\x00\x00\x3c" in body  # session expiry interval 60 s
    for text in (b"sb-1", b"dead/1", b"gone", b"u", b"p"):
        assert text in body


def test_acks_subscribe_and_control_packets():
    assert codec.ack_packet(codec.PUBACK, 258) == b"\x40\x02\x01\x02"
    assert codec.ack_packet(codec.PUBREL, 1) == b"\x62\x02\x00\x01"
    (first, body), = codec.PacketReader().feed(codec.subscribe_packet(1, "a/#", qos=2,
                                                                      version=4))
    assert first == 0x82
    assert body == b"\x00\x01\x00\x03a/#\x02"
    assert codec.suback_codes(b"\x00\x01\x00\x01", version=5) == b"\x01"
    assert codec.connack_fields(b"\x01\x00") == (True, 0)


def test_a_length_longer_than_four_bytes_is_a_protocol_violation():
    with pytest.raises(codec.ProtocolViolation):
        codec.PacketReader().feed(b"\x30\xff\xff\xff\xff\x01")


def test_a_packet_over_the_limit_is_refused_from_its_length_alone():
    reader = codec.PacketReader(max_size=1024)
    header = b"\x30" + codec.varint(10_000_000)  # announces 10 MB; only the header arrives
    with pytest.raises(codec.ProtocolViolation, match="10000000 bytes, over the limit of 1024"):
        reader.feed(header)


@pytest.mark.parametrize(("first", "body"), [
    (0x30, b""),  # no topic length
    (0x30, b"\x00"),  # half a topic length
    (0x32, b"\x00\x01t"),  # QoS 1 without a packet id
    (0x32, b"\x00\x05top"),  # the topic runs past the packet
])
def test_a_malformed_publish_is_a_protocol_violation_not_an_index_error(first, body):
    with pytest.raises(codec.ProtocolViolation):
        codec.publish_fields(first, body, version=4)


def test_short_connack_and_suback_are_protocol_violations():
    with pytest.raises(codec.ProtocolViolation, match="CONNACK"):
        codec.connack_fields(b"\x00")
    with pytest.raises(codec.ProtocolViolation, match="SUBACK"):
        codec.suback_codes(b"\x00", version=4)


def test_mqtt5_correlation_data_round_trips_through_a_publish() -> None:
    from streambench.generate.protocols.mqtt import codec

    publisher = codec.Publisher("devices/1/cmd", qos=1, retain=False, version=5)
    packet, _ = publisher.packet(b'{"cmd":"read"}', correlation=b"1-7",
                                 response_topic="devices/1/reply")
    ((first, body),) = codec.PacketReader().feed(packet)
    topic, packet_id, payload = codec.publish_fields(first, body, version=5)
    assert (topic, packet_id, payload) == (b"devices/1/cmd", 1, b'{"cmd":"read"}')
    assert codec.publish_correlation(first, body) == b"1-7"
    plain, _ = publisher.packet(b"x")
    ((first, body),) = codec.PacketReader().feed(plain)
    assert codec.publish_correlation(first, body) is None
