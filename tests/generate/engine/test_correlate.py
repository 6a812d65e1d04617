"""Reply classification without sockets: any JSON layout, rules, errors only when set."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streambench.generate.engine.correlate import (
    Classifier,
    Match,
    Rule,
    parse_path,
    shape,
)

plain = Classifier(id_path=("cid",))


@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "cid"),
                       st.integers(-1000, 1000) | st.text(max_size=8), max_size=5),
       st.from_regex(r"[0-9]{1,4}-[0-9]{1,6}", fullmatch=True), st.booleans())
def test_whitespace_and_key_order_never_matter(extra: dict, cid: str, first: bool) -> None:
    import json

    doc = {"cid": cid, **extra} if first else {**extra, "cid": cid}
    for text in (orjson.dumps(doc).decode(), json.dumps(doc, indent=2),
                 json.dumps(doc, separators=(" , ", " : "))):
        verdict = plain.classify(text)
        assert (verdict.action, verdict.cid) == ("answer", cid)


def test_pythons_json_dumps_with_spaces_is_matched() -> None:
    import json

    verdict = plain.classify(json.dumps({"text": "hi", "cid": "0-1", "seq": 1}))
    assert (verdict.action, verdict.cid) == ("answer", "0-1")


def test_a_nested_object_with_its_own_id_does_not_confuse_the_match() -> None:
    ack = Classifier(id_path=("reply_to",))
    text = '{"ok": true, "reply_to": "3-7", "item": {"id": "9-9", "reply_to": "x"}}'
    assert ack.classify(text).cid == "3-7"
    nested = Classifier(id_path=parse_path("data.request_id"))
    assert nested.classify('{"data": {"request_id": 17}, "request_id": 1}').cid == "17"


@pytest.mark.parametrize(("error", "is_error"), [
    (None, False), (False, False), ("", False), ({}, False), ([], False),
    ("boom", True), ({"code": -32601, "message": "Method not found"}, True)])
def test_an_error_field_counts_only_when_set(error: object, is_error: bool) -> None:
    verdict = plain.classify(orjson.dumps({"cid": "1-1", "error": error}).decode())
    assert verdict.action == ("error" if is_error else "answer")
    if isinstance(error, dict) and error:
        assert verdict.error == "Method not found (code -32601)"


def test_a_reply_without_the_id_names_the_path_and_what_it_has() -> None:
    verdict = plain.classify('{"ok": true, "reply_to": "0-1", "data": {"id": 3}}')
    assert verdict.action == "garbage"
    assert verdict.error == "no id at 'cid'; the reply has ok, reply_to, data.id"


def test_rules_recognise_replies_that_are_not_answers() -> None:
    rules = [Rule("welcome", Match.build({"type": "welcome"})),
             Rule("pong", Match.build(pattern=r"^pong$")),
             Rule("done", Match.build({"type": ["complete", "done"]}), action="end"),
             Rule("nack", Match.build({"ok": False}), action="error")]
    c = Classifier(id_path=("id",), rules=rules)
    assert c.classify('{"type": "welcome", "motd": "hi"}').action == "other"
    assert c.classify("pong").rule.name == "pong"  # type: ignore[union-attr]
    end = c.classify('{"type": "done", "id": "1-2"}')
    assert (end.action, end.cid) == ("end", "1-2")
    nack = c.classify('{"ok": false, "id": 5}')
    assert (nack.action, nack.cid, nack.error) == ("error", "5", "error reply (nack)")


def test_true_is_not_one_and_null_matches_a_missing_field() -> None:
    assert not Match.build({"n": 1})({"n": True}, "")
    assert Match.build({"n": True})({"n": True}, "")
    assert Match.build({"id": None})({"method": "x"}, "")
    assert not Match.build({"id": None})({"id": 3}, "")


def test_a_truncated_echo_still_shows_its_id() -> None:
    verdict = plain.classify('{"text":"a","cid":"4-2","seq":2')
    assert (verdict.action, verdict.cid) == ("answer", "4-2")
    assert plain.classify("not json at all").action == "garbage"


def test_in_order_replies_carry_no_id() -> None:
    verdict = Classifier(id_path=None).classify('{"anything": 1}')
    assert (verdict.action, verdict.cid) == ("answer", None)


def test_shape_lists_key_paths_not_values() -> None:
    assert shape({"a": 1, "b": {"c": "secret@example.com"}}) == "a, b.c"


@pytest.mark.parametrize("path", ["", "a..b", ".a", "a."])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="bad path"):
        parse_path(path)
