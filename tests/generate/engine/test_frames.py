"""Frames with slots, without sockets: ids typed as asked, variables, raw text, the fast path."""

from __future__ import annotations

import orjson

from streambench.generate.engine.conversation import compile_plan
from streambench.scenario.model import Scenario
from streambench.scenario.synth import compile_body
from tests.helpers import scenario


def mix(**sections: object) -> Scenario:
    doc = scenario().model_dump(exclude_defaults=True)
    del doc["message"]
    return Scenario.model_validate({**doc, **sections})


def test_the_plain_frame_is_byte_for_byte_the_old_one() -> None:
    sc = scenario()
    plan = compile_plan(sc)
    old = compile_body(sc.message.body, seed=sc.seed, pool=sc.message.pool)
    framer = plan.framer(3)
    for seq in (1, 2, 1500):
        _kind, cid, data = framer.message(seq)
        assert data == old.frame(seq, f"3-{seq}", seq)
        assert cid == f"3-{seq}"
    assert plan.plain


def test_a_nested_integer_id_and_no_seq() -> None:
    sc = scenario(message={"body": {"op": "get", "meta": {"who": "{{user}}"}},
                           "cid_field": "meta.request_id", "cid_type": "integer",
                           "seq_field": None},
                  variables={"user": "user-{conn}"})
    _, cid, data = compile_plan(sc).framer(2).message(7)
    assert cid == "2000000007"
    assert orjson.loads(data) == {"op": "get", "meta": {"who": "user-2",
                                                         "request_id": 2000000007}}


def test_nothing_added_sends_the_body_exactly_as_written() -> None:
    sc = scenario(message={"body": {"ping": True}, "cid_field": None, "seq_field": None})
    assert compile_plan(sc).framer(0).message(1)[2] == b'{"ping":true}'


def test_a_raw_text_body_with_placeholders_and_a_room_from_the_connection() -> None:
    sc = scenario(message={"body": "SAY {{room}} {{cid}} 100%"},
                  variables={"room": ["lobby", "news"]}, replies={"in_order": True})
    plan = compile_plan(sc)
    assert plan.framer(0).message(4)[2] == b"SAY lobby 0-4 100%"
    assert plan.framer(3).message(4)[2] == b"SAY news 3-4 100%"


def test_captured_values_fill_later_frames_typed_or_as_text() -> None:
    sc = scenario(message={"body": {"token": "{{token}}", "note": "t={{token}}"}},
                  target={"url": "ws://127.0.0.1:1/x", "on_connect": [
                      {"name": "auth", "send": {"hello": 1}, "expect": {"type": "ok"},
                       "timeout": "1s", "capture": {"token": "session.token"}}]})
    framer = compile_plan(sc).framer(0)
    framer.set({"token": 'a"b'})
    doc = orjson.loads(framer.message(1)[2])
    assert (doc["token"], doc["note"]) == ('a"b', 't=a"b')


def test_a_weighted_mix_is_seeded_per_connection() -> None:
    sc = mix(messages=[{"name": "say", "weight": 3, "body": {"t": "say"}},
                            {"name": "typing", "weight": 1, "body": {"t": "typing"},
                             "expect": "none", "cid_field": None}])
    one, two = compile_plan(sc).framer(1), compile_plan(sc).framer(1)
    picks = [one.message(i)[0].name for i in range(1, 2001)]
    again = [two.message(i)[0].name for i in range(1, 2001)]
    assert picks == again
    assert 0.7 < picks.count("say") / len(picks) < 0.8


def test_a_body_with_nothing_random_is_rendered_once_and_a_random_one_pool_times() -> None:
    fixed = compile_plan(scenario(message={"body": {"text": "same", "n": 1}, "pool": 1024}))
    drawn = compile_plan(scenario(message={"body": {"who": "{{name}}"}, "pool": 1024}))
    assert fixed.bodies == 1  # not 1,024 copies made at every run's start
    assert drawn.bodies == 1024
    framer = fixed.framer(0)
    assert [orjson.loads(framer.message(seq)[2]) for seq in (1, 1025)] == [
        {"text": "same", "n": 1, "cid": "0-1", "seq": 1},
        {"text": "same", "n": 1, "cid": "0-1025", "seq": 1025}]
    texts = {orjson.loads(drawn.framer(0).message(seq)[2])["who"] for seq in range(1, 200)}
    assert len(texts) > 1
