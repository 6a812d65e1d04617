"""Pushes without sockets: server timestamps, sequence numbers and gaps as rows."""

from __future__ import annotations

from typing import Any

import pytest

from streambench.capture.schema import Kind
from streambench.generate.engine.pushes import PushLog, PushReader, epoch_ns, sequence_number
from streambench.scenario.streams import PushStream

SECOND = 1_000_000_000


@pytest.mark.parametrize(("value", "fmt", "expected"), [
    (1_764_644_645, "epoch_s", 1_764_644_645 * SECOND),
    (1_764_644_645.25, "epoch_s", 1_764_644_645_250_000_000),
    (1_764_644_645_123, "epoch_ms", 1_764_644_645_123_000_000),
    ("1764644645123", "epoch_ms", 1_764_644_645_123_000_000),
    (1_764_644_645_123_456, "epoch_us", 1_764_644_645_123_456_000),
    (1_764_644_645_123_456_789, "epoch_ns", 1_764_644_645_123_456_789),
    ("2025-12-02T03:04:05.123Z", "iso8601", 1_764_644_645_123_000_000),
    ("2025-12-02T04:04:05.123+01:00", "iso8601", 1_764_644_645_123_000_000),
    ("2025-12-02T03:04:05.123", "iso8601", 1_764_644_645_123_000_000),  # no zone: UTC
])
def test_server_timestamps_in_every_format(value: Any, fmt: str, expected: int) -> None:
    assert epoch_ns(value, fmt) == expected


@pytest.mark.parametrize(("value", "fmt"), [
    (None, "epoch_ms"), (True, "epoch_s"), ("soon", "epoch_ms"), ({"t": 1}, "epoch_ms"),
    (1_764_644_645, "iso8601"), ("yesterday", "iso8601"), (float("nan"), "epoch_s"),
])
def test_what_is_no_timestamp_reads_as_none(value: Any, fmt: str) -> None:
    assert epoch_ns(value, fmt) is None


def test_sequence_numbers_are_integers_or_integer_text() -> None:
    assert [sequence_number(v) for v in (7, "8", "-1", 1.5, True, None, "x", 1 << 70)] == \
        [7, 8, -1, None, None, None, None, None]


def test_a_push_row_holds_the_gap_the_stamp_and_the_number() -> None:
    rows: list[tuple[Any, ...]] = []
    reader = PushReader.build(PushStream(timestamp="data.ts", timestamp_format="epoch_ms",
                                         sequence="data.seq"))
    log = PushLog(reader, rows.append, conn=3, epoch_offset=lambda: 1_000 * SECOND)
    log.push('{"data": {"ts": 1000500, "seq": 1}}', 1 * SECOND, stream=None, topic="/t",
             status="tick")
    log.push('{"data": {"ts": 1001700, "seq": 2}}', 2 * SECOND, stream=None, topic="/t",
             status="tick")
    log.push('{"data": {}}', 2 * SECOND + 5, stream="s-1", topic="/t", status="next")
    first, second, other = rows
    assert first[:7] == (Kind.PUSH, SECOND, 3, 1, None, None, SECOND // 2)
    # gap: from the previous push of the stream; stamp: server epoch ms in monotonic ns
    assert second[:7] == (Kind.PUSH, 2 * SECOND, 3, 2, None, SECOND, 1_700_000_000)
    assert second[7:10] == (len('{"data": {"ts": 1001700, "seq": 2}}'), "/t", "tick")
    assert other[3:7] == (None, "s-1", None, None)  # another stream; nothing to read


def test_without_a_stream_section_a_push_is_not_parsed() -> None:
    rows: list[tuple[Any, ...]] = []
    log = PushLog(PushReader(), rows.append, conn=0, epoch_offset=lambda: 0)
    log.push("not json {", 5, stream=None, topic=None, status=None)
    assert rows[0][3] is None
    assert rows[0][6] is None
    assert rows[0][11] == "not json {"


def test_a_push_read_late_has_no_gap_and_no_staleness_but_keeps_its_number() -> None:
    rows: list[tuple[Any, ...]] = []
    reader = PushReader.build(PushStream(timestamp="ts", timestamp_format="epoch_ns",
                                         sequence="n"))
    log = PushLog(reader, rows.append, conn=0, epoch_offset=lambda: 0)
    log.push('{"ts": 5, "n": 1}', 10, stream=None, topic=None, status=None,
             arrival_known=False)  # it waited in a buffer nobody read
    log.push('{"ts": 15, "n": 2}', 20, stream=None, topic=None, status=None)
    log.push('{"ts": 25, "n": 3}', 30, stream=None, topic=None, status=None)
    assert [(r[3], r[5], r[6]) for r in rows] == [(1, None, None), (2, None, 15), (3, 20, 25)]
