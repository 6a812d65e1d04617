"""The gRPC codec without sockets: appended fields decode as set fields, replies as rows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from streambench.generate.protocols.grpc.codec import CodecError, GrpcCodec, varint
from streambench.scenario.proto import Method, compile_proto
from streambench.scenario.synth import compile_body

PROTO = """syntax = "proto3";
package t;
message Req { string text = 1; int32 n = 2; string cid = 3; SEQ seq = 4; }
message Nested { string cid = 1; Req echo = 2; repeated int32 values = 3; bytes raw = 4; }
service S {
  rpc Call(stream Req) returns (stream Req);
  rpc Deep(stream Req) returns (stream Nested);
}
"""


def method(tmp_path: Path, seq_type: str = "int64", name: str = "Call") -> Method:
    file = tmp_path / f"{seq_type}.proto"
    file.write_text(PROTO.replace("SEQ", seq_type))
    return compile_proto(str(file)).method(None, name)


def codec(rpc: Method, *, payloads: bool = True, reply_id: str | None = None) -> GrpcCodec:
    pool = compile_body({"text": "{{word}}", "n": "{{int:1:9}}"}, seed=1, pool=8)
    return GrpcCodec(rpc, pool.body, pool=len(pool), cid_field="cid", seq_field="seq",
                     reply_id=reply_id, payloads=payloads)


@pytest.mark.parametrize("seq_type", ["int32", "int64", "uint64", "sint64", "fixed64",
                                      "sfixed32"])
def test_appended_cid_and_seq_decode_as_the_fields(tmp_path: Path, seq_type: str):
    rpc = method(tmp_path, seq_type)
    c = codec(rpc)
    pool = compile_body({"text": "{{word}}", "n": "{{int:1:9}}"}, seed=1, pool=8)
    for i in (1, 2, 300, 70_000):
        request = rpc.request.FromString(c.request(i, f"0-{i}", i))
        assert (request.cid, request.seq) == (f"0-{i}", i)
        body = pool.body(i)
        assert (request.text, request.n) == (body["text"], body["n"])


@given(st.integers(min_value=0, max_value=2**63))
@example(0x7F).via("one byte's end")
@example(0x80)
@example(0x3FFF)
@example(0x4000)
@example(0x1FFFFF).via("the unrolled encoding's end")
@example(0x200000)
def test_varint_round_trips(value: int):
    decoded, shift = 0, 0
    for byte in varint(value):
        decoded |= (byte & 0x7F) << shift
        shift += 7
    assert decoded == value


def test_replies_give_their_cid_and_json(tmp_path: Path):
    rpc = method(tmp_path)
    c = codec(rpc)
    cid, payload = c.reply(rpc.response(text="hi", cid="3-7", seq=7).SerializeToString())
    assert cid == "3-7"
    assert payload is not None
    assert orjson.loads(payload) == {"text": "hi", "n": 0, "cid": "3-7", "seq": 7}  # defaults too
    assert codec(rpc, payloads=False).reply(rpc.response(cid="1-1").SerializeToString()) == (
        "1-1", None)
    assert c.reply(rpc.response(text="no cid").SerializeToString())[0] is None


def test_nested_replies_use_the_json_mapping(tmp_path: Path):
    rpc = method(tmp_path, name="Deep")
    reply = rpc.response(cid="1-2", values=[1, 2], raw=b"\x00\x01")
    reply.echo.text = "x"
    cid, payload = codec(rpc).reply(reply.SerializeToString())
    assert cid == "1-2"
    assert orjson.loads(payload or b"") == {"cid": "1-2", "echo": {"text": "x"},
                                            "values": [1, 2], "raw": "AAE="}


def test_replies_id_is_a_path_into_the_reply(tmp_path: Path):
    rpc = method(tmp_path, name="Deep")
    reply = rpc.response(cid="not this one")
    reply.echo.cid = "4-9"
    cid, _ = codec(rpc, reply_id="echo.cid").reply(reply.SerializeToString())
    assert cid == "4-9"


def test_garbage_is_a_codec_error(tmp_path: Path):
    with pytest.raises(CodecError, match="not a Req"):
        codec(method(tmp_path)).reply(b"\xff\xff\xff")


def test_faulted_frames(tmp_path: Path):
    rpc = method(tmp_path)
    c = codec(rpc)
    original = c.request(5, "0-5", 5)
    renamed = c.from_json(b'{"txt":"a","n":3,"cid":"0-5","seq":5}', original=original)
    assert rpc.request.FromString(renamed).text == ""  # an unknown name is left out
    assert c.from_json(b'{"text":"a","cid":"0-5","seq":5', original=original) == original[:-1]
    with pytest.raises(CodecError):
        c.from_json(b'{"n":"not a number","cid":"0-5","seq":5}', original=original)
