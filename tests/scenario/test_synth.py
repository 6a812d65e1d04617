"""Synthetic bodies: deterministic per seed, typed where asked, framed with cid and seq last."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streambench.errors import ConfigError
from streambench.scenario import PLACEHOLDERS, compile_body
from streambench.scenario.synth import render

SMOKE_BODY = {"user_id": "{{user_id}}", "email": "{{email}}", "text": "{{sentence}}", "value": 1.5}


def frames(pool_size: int, seed: int, body: dict[str, Any] = SMOKE_BODY) -> list[bytes]:
    pool = compile_body(body, seed=seed, pool=pool_size)
    return [pool.frame(i, f"0-{i}", i) for i in range(pool_size)]


def test_same_seed_same_bodies() -> None:
    assert frames(64, seed=7) == frames(64, seed=7)


def test_different_seeds_differ() -> None:
    assert frames(64, seed=7) != frames(64, seed=8)


def test_pool_bodies_are_distinct() -> None:
    bodies = {orjson.dumps(compile_body(SMOKE_BODY, seed=1, pool=200).body(i)) for i in range(200)}
    assert len(bodies) > 190  # synthetic values may collide now and then, not wholesale


def test_frame_is_json_with_cid_and_seq_last() -> None:
    pool = compile_body(SMOKE_BODY, seed=0, pool=4)
    message = orjson.loads(pool.frame(5, "3-1042", 1042))
    assert list(message) == ["user_id", "email", "text", "value", "cid", "seq"]
    assert message["cid"] == "3-1042"
    assert message["seq"] == 1042
    assert message["value"] == 1.5


def test_custom_correlation_field_names() -> None:
    pool = compile_body({"a": 1}, seed=0, pool=1, cid_field="corr id", seq_field='n"')
    message = orjson.loads(pool.frame(0, "1-1", 1))
    assert list(message.items())[-2:] == [("corr id", "1-1"), ('n"', 1)]


def test_empty_body_frames_without_a_comma() -> None:
    pool = compile_body({}, seed=0, pool=3)
    assert pool.frame(2, "0-7", 7) == b'{"cid":"0-7","seq":7}'


def test_pool_cycles() -> None:
    pool = compile_body(SMOKE_BODY, seed=3, pool=5)
    assert len(pool) == 5
    for i in range(5):
        first, again = orjson.loads(pool.frame(i, "a", 1)), orjson.loads(pool.frame(i + 5, "a", 1))
        assert first == again
    assert pool.frame(0, "a", 1) != pool.frame(1, "a", 1)


def test_exact_placeholder_gives_typed_value() -> None:
    body = {"i": "{{int}}", "r": "{{int:1:6}}", "f": "{{float:-1:1}}", "b": "{{bool}}",
            "e": "{{epoch_ms}}", "f0": "{{ float }}"}
    for seed in range(50):
        doc = render(body, seed=seed)
        assert type(doc["i"]) is int
        assert 0 <= doc["i"] <= 1_000_000
        assert type(doc["r"]) is int
        assert 1 <= doc["r"] <= 6
        assert type(doc["f"]) is float
        assert -1 <= doc["f"] <= 1
        assert type(doc["b"]) is bool
        assert type(doc["e"]) is int
        assert 0 <= doc["f0"] <= 1


def test_placeholders_inside_text_are_interpolated() -> None:
    doc = render({"s": "room-{{int:7:7}} ok={{bool}} {{word}}!"}, seed=1)
    head, ok, word = doc["s"].split(" ")
    assert head == "room-7"
    assert ok in ("ok=true", "ok=false")
    assert word.endswith("!")
    assert len(word) > 1


def test_nested_dicts_and_lists() -> None:
    body = {"user": {"name": "{{name}}", "tags": ["{{word}}", {"n": "{{int:2:2}}"}, 3]}}
    doc = render(body, seed=2)
    assert doc["user"]["tags"][1:] == [{"n": 2}, 3]
    assert " " in doc["user"]["name"]


def test_shapes_of_values() -> None:
    body = {"uuid": "{{uuid}}", "email": "{{email}}", "ip": "{{ip}}", "ts": "{{timestamp}}",
            "chars": "{{chars:300}}", "hex": "{{hex:12}}", "choice": "{{choice:a:b}}",
            "phone": "{{phone}}", "user": "{{user_id}}", "city": "{{city}}"}
    for seed in range(20):
        doc = render(body, seed=seed)
        assert uuid.UUID(doc["uuid"]).version == 4
        local, _, domain = doc["email"].partition("@")
        assert local
        assert domain in ("example.com", "example.org", "example.net")
        assert ipaddress.ip_address(doc["ip"]).is_private  # RFC 5737 ranges are reserved
        assert dt.datetime.fromisoformat(doc["ts"]).year == 2024
        assert len(doc["chars"]) == 300
        assert len(doc["hex"]) == 12
        assert int(doc["hex"], 16) >= 0
        assert doc["choice"] in ("a", "b")
        assert "-555-01" in doc["phone"]
        assert doc["user"].startswith("user-")


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_every_documented_placeholder_renders(name: str) -> None:
    examples = {"chars:N": "chars:5", "hex:N": "hex:4", "int:LO:HI": "int:1:2",
                "float:LO:HI": "float:1:2", "choice:A:B:...": "choice:x:y"}
    placeholder = "{{" + examples.get(name, name) + "}}"
    assert render({"v": placeholder}, seed=0)["v"] is not None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"a": "{{nope}}"}, "unknown placeholder {{nope}}"),
        ({"cid": "x"}, "key 'cid' is reserved"),
        ({"seq": 1}, "key 'seq' is reserved"),
        ({"a": "{{int:x:y}}"}, "LO and HI must be whole numbers"),
        ({"a": "{{choice}}"}, "at least one non-empty option"),
        ({"a": "{{chars}}"}, "{{chars:N}}"),
        ({"a": b"raw"}, "cannot be sent as JSON"),
    ],
)
def test_invalid_bodies_raise_config_error(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=r"^message\.body") as caught:
        compile_body(body, seed=0, pool=1)
    assert fragment in str(caught.value)


def test_pool_must_hold_a_body() -> None:
    with pytest.raises(ConfigError, match=r"message\.pool"):
        compile_body({}, seed=0, pool=0)


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)


@given(body=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("cid", "seq")),
                            json_values, max_size=6),
       seq=st.integers(0, 2**62))
def test_any_literal_body_frames_to_valid_json(body: dict[str, Any], seq: int) -> None:
    literal = {k: v for k, v in body.items() if "{{" not in orjson.dumps(v).decode()}
    message = orjson.loads(compile_body(literal, seed=0, pool=1).frame(0, "12-34", seq))
    assert message == {**literal, "cid": "12-34", "seq": seq}
    assert list(message)[-2:] == ["cid", "seq"]
