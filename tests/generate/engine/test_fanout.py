"""The fan-out ledger, without sockets: who must still get each broadcast message."""

from __future__ import annotations

from typing import Any

from streambench.capture.schema import Kind
from streambench.generate.engine.fanout import Ledger, render_group, topic_matches

MS = 1_000_000


def ledger(*, self_copy: bool = False, members: dict[int, str] | None = None,
           topic_filters: bool = False) -> tuple[Ledger, list[tuple[Any, ...]]]:
    rows: list[tuple[Any, ...]] = []
    book = Ledger(rows.append, timeout_ns=100 * MS, self_copy=self_copy, senders=1,
                  topic_filters=topic_filters)
    for conn, key in (members or {0: "a", 1: "a", 2: "a", 3: "b"}).items():
        book.join(conn, key)
    return book, rows


def test_every_other_member_gets_one_delivery_row_timed_from_the_intended_send() -> None:
    book, rows = ledger()
    assert book.sent("0-1", conn=0, seq=1, intended=10 * MS, sent=11 * MS, group="a") == 2
    assert book.delivered("0-1", 1, 15 * MS, '{"cid":"0-1"}', "/r")
    assert book.delivered("0-1", 2, 18 * MS, '{"cid":"0-1"}', "/r")
    assert [(r[0], r[2], r[3], r[4], r[5], r[6], r[9]) for r in rows] == [
        (Kind.DELIVERY, 1, 1, "0-1", 10 * MS, 11 * MS, "a"),
        (Kind.DELIVERY, 2, 1, "0-1", 10 * MS, 11 * MS, "a")]
    assert not book.pending  # the last member got it
    book.sender_done()
    assert book.drained


def test_copies_nobody_waits_for_are_told_apart() -> None:
    book, rows = ledger()
    book.sent("0-1", conn=0, seq=1, intended=0, sent=0, group="a")
    book.delivered("0-1", 1, MS, "x", "/r")
    book.delivered("0-1", 1, 2 * MS, "x", "/r")  # again
    book.delivered("0-1", 0, 2 * MS, "x", "/r")  # the sender's own copy
    book.delivered("0-1", 3, 2 * MS, "x", "/r")  # room b never asked for it
    assert [(r[0], r[9]) for r in rows[1:]] == [
        (Kind.ERROR, "duplicate"), (Kind.OTHER, "own_copy"), (Kind.ERROR, "stray_delivery")]
    assert not book.delivered("9-9", 1, MS, "x", "/r")  # not a fan-out message at all


def test_members_still_waiting_at_the_timeout_are_missed_and_later_copies_late() -> None:
    book, rows = ledger()
    book.sent("0-1", conn=0, seq=1, intended=0, sent=0, group="a")
    book.delivered("0-1", 1, MS, "x", "/r")
    assert book.expire(50 * MS, lambda conn: f"/r{conn}") == 0
    assert book.expire(100 * MS, lambda conn: f"/r{conn}") == 1
    assert rows[-1][:5] == (Kind.TIMEOUT, 100 * MS, 2, 1, "0-1")
    assert rows[-1][8:10] == ("/r2", "delivery")
    book.delivered("0-1", 2, 120 * MS, "x", "/r")
    book.delivered("0-1", 1, 120 * MS, "x", "/r")
    assert [r[9] for r in rows[-2:]] == ["late_delivery", "duplicate"]


def test_self_copy_makes_the_sender_a_member_and_a_group_of_one_expects_nothing() -> None:
    book, rows = ledger(self_copy=True)
    assert book.sent("0-1", conn=0, seq=1, intended=0, sent=0, group="a") == 3
    book.delivered("0-1", 0, MS, "x", "/r")
    assert rows[-1][0] == Kind.DELIVERY
    alone, _ = ledger(members={0: "a"})
    assert alone.sent("0-1", conn=0, seq=1, intended=0, sent=0, group="a") == 0
    assert not alone.pending


def test_over_mqtt_the_members_are_the_subscriptions_that_match_the_topic() -> None:
    book, _ = ledger(members={0: "chat/+", 1: "chat/lobby", 2: "chat/#", 3: "news"},
                     topic_filters=True)
    assert book.members("chat/lobby") == {0, 1, 2}
    assert topic_matches("a/#", "a") is True
    assert topic_matches("a/+", "a/b/c") is False
    assert render_group("room-{{ room }}-{{conn}}", {"room": "x", "conn": 3}) == "room-x-3"
