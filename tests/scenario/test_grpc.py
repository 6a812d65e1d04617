"""gRPC scenarios: the proto is compiled at load, and what does not fit is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from streambench.errors import ScenarioError
from streambench.scenario import load_scenario, public_dump
from streambench.scenario.model import GrpcTarget

PROTO = """syntax = "proto3";
package shop;
message Order { string item = 1; int32 amount = 2; string cid = 3; sint64 seq = 4; }
message Ack { string cid = 1; bool ok = 2; }
message Bare { string item = 1; }
service Orders {
  rpc Place(Order) returns (Ack);
  rpc Watch(Order) returns (stream Ack);
  rpc Trade(stream Order) returns (stream Ack);
  rpc Upload(stream Order) returns (Ack);
  rpc Blind(stream Bare) returns (stream Bare);
}
"""


def write(tmp_path: Path, target: str, *, body: str = '{item: "{{word}}", amount: 2}',
          proto: str = PROTO) -> Path:
    (tmp_path / "protos").mkdir(exist_ok=True)
    (tmp_path / "protos" / "shop.proto").write_text(proto)
    file = tmp_path / "shop.yaml"
    file.write_text("name: shop\n"
                    "target:\n"
                    "  protocol: grpc\n"
                    "  url: grpc://127.0.0.1:50051\n"
                    f"{target}"
                    "load: {rate: 10, duration: 1s}\n"
                    f"message: {{body: {body}}}\n")
    return file


def error_of(file: Path) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(file)
    return str(caught.value)


def test_the_proto_is_found_beside_the_scenario_and_compiled(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Trade\n")
    scenario = load_scenario(file)
    assert isinstance(scenario.target, GrpcTarget)
    assert scenario.target.proto == str(tmp_path / "protos" / "shop.proto")
    rpc = scenario.target.rpc()
    assert (rpc.path, rpc.kind) == ("/shop.Orders/Trade", "bidi_stream")
    assert public_dump(scenario)["target"]["method"] == "Trade"


def test_a_wrong_method_is_one_line_naming_the_field(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Trdae\n")
    assert error_of(file) == (f"{file}:6: target.method: no method 'Trdae' in service "
                              "shop.Orders; expected one of Place, Watch, Trade, Upload, Blind; "
                              "did you mean 'Trade'?")


@pytest.mark.parametrize(("target", "expected"), [
    ("  proto: protos/nope.proto\n  method: Trade\n",
     ":5: target.proto: file not found: "),
    ("  proto: protos/shop.proto\n  service: Order\n  method: Trade\n",
     ":6: target.service: no service 'Order' in shop.proto; expected one of shop.Orders; "
     "did you mean 'shop.Orders'?"),
    ("  proto: protos/shop.proto\n  method: Upload\n",
     ":6: target.method: Upload is a client-streaming method; streambench calls unary, "
     "server-streaming and bidirectional-streaming methods"),
    ("  proto: protos/shop.proto\n  method: Blind\n",
     ": message.cid_field: Blind is a bidirectional stream, matched by correlation id: its "
     "requests (shop.Bare) need a string field 'cid'"),
])
def test_what_does_not_fit_the_proto_is_named(tmp_path: Path, target: str, expected: str):
    message = error_of(write(tmp_path, target))
    assert expected in message
    assert "\n" not in message


def test_a_proto_that_does_not_compile_shows_protocs_first_error(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Place\n",
                 proto=PROTO.replace("string item = 1; int32", "strin item = 1; int32"))
    message = error_of(file)
    assert message.startswith(f"{file}:5: target.proto: does not compile: shop.proto:3:")
    assert '"strin" is not defined' in message


def test_a_body_that_does_not_fit_the_request_is_named(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Place\n",
                 body='{item: "{{word}}", amont: 2}')
    message = error_of(file)
    assert message.startswith(f"{file}:8: message.body: does not fit shop.Order: ")
    assert '"amont"' in message


def test_a_bidi_reply_id_path_must_start_at_a_reply_field(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Trade\n")
    file.write_text(file.read_text() + "replies: {id: meta.request_id}\n")
    assert "replies.id: replies (shop.Ack) have no field 'meta'; expected one of cid, ok" \
        in error_of(file)
    file.write_text(file.read_text().replace("meta.request_id", "cid"))
    assert load_scenario(file).replies.id == "cid"
    file.write_text(file.read_text().replace(
        "{id: cid}", "{id: cid, rules: [{name: x, match: {ok: true}, as: end}]}"))
    assert "reply rules" in error_of(file)


def test_unary_methods_need_no_correlation_field(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Place\n")
    assert load_scenario(file).target.rpc().kind == "unary"


def test_metadata_keys_and_secrets(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Place\n"
                 "  metadata: {Authorization: literal-secret-value}\n")
    message = error_of(file)
    assert "target.metadata.Authorization: metadata key 'Authorization': expected lower-case" \
        in message
    assert "literal-secret-value" not in message
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Place\n"
                 "  metadata: {authorization: Bearer abcdefghijklmnopqrstuvwxyz0123}\n")
    dumped = public_dump(load_scenario(file))
    assert dumped["target"]["metadata"] == {"authorization": "<redacted>"}


def test_tls_needs_grpcs(tmp_path: Path):
    file = write(tmp_path, "  proto: protos/shop.proto\n  method: Place\n"
                 "  tls: {ca: ca.pem}\n")
    assert "target.tls: TLS settings need a grpcs:// URL" in error_of(file)
