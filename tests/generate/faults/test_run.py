"""Every client-side fault kind, injected into a real run, as the events and ground truth show it.

One run against the embedded WebSocket target carries all the faults (and a
server-side fault, so both sources of ground truth land in the store); each
test reads one kind's traces from the stored events.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import polars as pl
import pytest

from streambench.api import RunResult, run_async
from streambench.capture.store import Store
from tests.helpers import scenario

MS = 1_000_000
FAULTS = [
    {"kind": "delay", "delay": "40ms", "probability": 0.1, "for": "1s"},
    {"kind": "drop", "probability": 0.05},
    {"kind": "duplicate", "probability": 0.05},
    {"kind": "reorder", "probability": 0.05, "window": 2},
    {"kind": "schema_drift", "at": "1s", "rename": {"text": "body"}, "remove": ["value"]},
    {"kind": "malformed", "probability": 0.05},
    {"kind": "disconnect", "at": "1200ms", "for": "100ms"},
    {"kind": "burst", "at": "500ms", "for": "300ms", "rate": 200},
]


class Run:
    def __init__(self, store: Store, result: RunResult) -> None:
        self.result = result
        self.events = store.events(result.run_id).collect()
        self.truth = store.faults(result.run_id).collect()
        start = self.events["intended_ns"].min()
        self.events = self.events.with_columns(offset_ms=(pl.col("intended_ns") - start) / MS)

    def of(self, kind: str, status: str | None = None) -> pl.DataFrame:
        rows = self.events.filter(pl.col("kind") == kind)
        return rows if status is None else rows.filter(pl.col("status") == status)

    def faulted(self, fault: str) -> list[str]:
        return self.of("fault", fault)["cid"].to_list()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    store = Store(tmp_path_factory.mktemp("faults") / "store")
    sc = scenario(target={"url": "embedded", "server": {"error_rate": 0.02, "seed": 1},
                          "reconnect": {"initial": "10ms"}},
                  load={"connections": 2, "rate": 200, "duration": "2s"},
                  capture={"redaction": {"allow": ["text", "body", "value"]}},
                  faults=FAULTS, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMBENCH_HASH_KEY", "test-only-hash-key-0123456789abcdef")
        return Run(store, asyncio.run(run_async(sc, store=store)))


def test_the_run_completes_and_reconciles(run: Run):
    s = run.result.summary
    assert run.result.status == "completed"
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]


def test_delayed_messages_leave_late_and_count_from_their_intended_time(run: Run):
    cids = run.faulted("delay")
    assert 10 <= len(cids) <= 40  # 10% of ~200 messages in the first second
    sends = run.of("send").filter(pl.col("cid").is_in(cids))
    assert ((sends["sent_ns"] - sends["intended_ns"]) >= 40 * MS).all()
    recv = run.of("recv").filter(pl.col("cid").is_in(cids))
    assert (recv["latency_ms"] >= 40).all()
    assert (recv["service_ms"] < recv["latency_ms"] - 30).all()
    assert (run.of("fault", "delay")["offset_ms"] < 1000).all()


def test_dropped_messages_are_never_sent(run: Run):
    cids = run.faulted("drop")
    assert cids
    assert run.events.filter(pl.col("cid").is_in(cids))["kind"].unique().to_list() == ["fault"]


def test_duplicates_come_back_as_unmatched_replies(run: Run):
    duplicates = run.of("fault", "duplicate")
    unmatched = set(run.of("error", "unmatched")["cid"])
    assert unmatched <= set(duplicates["cid"])
    # The copy's echo is lost only if the connection was cut under it (at 1.2 s).
    near_cut = duplicates.filter(pl.col("offset_ms").is_between(1100, 1400))
    assert len(unmatched) >= duplicates.height - near_cut.height > 0


def test_the_metrics_count_each_echoed_duplicate(run: Run):
    from streambench.analyze import metrics

    echoed = run.of("error", "unmatched")  # each is the echo of a message already answered
    measured = metrics(pl.LazyFrame(run.events.drop("offset_ms")), manifest=run.result.manifest)
    assert measured.run["duplicates"] == echoed.height > 0


def test_reordered_messages_leave_after_later_ones(run: Run):
    reordered = run.of("fault", "reorder").select("conn", "seq")
    assert reordered.height
    sends = run.of("send").sort("sent_ns")
    held = set(run.faulted("delay")) | set(run.faulted("reorder"))
    checked = 0
    for conn, seq in reordered.iter_rows():
        order = sends.filter(pl.col("conn") == conn)["seq"].to_list()
        if seq not in order:  # the connection was down when it was released
            continue
        before = order[:order.index(seq)]
        window = [s for s in (seq + 1, seq + 2) if s in order and f"{conn}-{s}" not in held]
        assert all(s in before for s in window)  # window: 2 -> after the next two messages
        checked += bool(window)
    assert checked


def test_schema_drift_changes_the_fields_from_its_start(run: Run):
    sends = run.of("send").filter(~pl.col("cid").is_in(run.faulted("malformed")))
    before = sends.filter(pl.col("offset_ms") < 1000)["payload"].to_list()
    after = sends.filter(pl.col("offset_ms") >= 1000)["payload"].to_list()
    assert all(set(orjson.loads(p)) >= {"text", "value"} for p in before)
    assert all("body" in (doc := orjson.loads(p)) and "text" not in doc and "value" not in doc
               for p in after)
    drifted = set(run.faulted("schema_drift"))
    assert set(run.of("send").filter(pl.col("offset_ms") >= 1000)["cid"]) <= drifted
    assert not drifted & set(run.of("send").filter(pl.col("offset_ms") < 1000)["cid"])


def test_malformed_messages_are_invalid_json_and_still_answered(run: Run):
    cids = run.faulted("malformed")
    sends = run.of("send").filter(pl.col("cid").is_in(cids))
    assert sends.height
    for payload in sends["payload"]:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(payload)
    answered = run.of("recv").filter(pl.col("cid").is_in(cids)).height
    assert answered >= sends.height - 2  # echoed; a few may meet the disconnect


def test_disconnect_cuts_every_connection_then_it_reconnects(run: Run):
    cut = run.of("fault", "disconnect")
    assert sorted(cut["conn"]) == [0, 1]
    abrupt = run.of("disconnect").filter(pl.col("status") == "1006")
    assert sorted(abrupt["conn"]) == [0, 1]
    assert run.of("connect").group_by("conn").len()["len"].to_list() == [2, 2]
    reconnected = run.of("connect").group_by("conn").agg(pl.col("ts").max())["ts"]
    assert (reconnected - cut["ts"].min()).dt.total_milliseconds().min() >= 100  # down 100ms


def test_a_burst_adds_arrivals_in_its_window(run: Run):
    scheduled = run.events.filter(
        pl.col("kind").is_in(["send", "fault", "error"]) & pl.col("seq").is_not_null()
        & (pl.col("status").is_null() | pl.col("status").is_in(["drop", "not_connected"]))
    ).unique(["conn", "seq"])
    in_window = scheduled.filter((pl.col("offset_ms") >= 500) & (pl.col("offset_ms") < 800))
    assert in_window.height == 120  # 200/s base + 200/s burst for 300 ms
    assert run.of("fault", "burst").height == 2  # one row per connection


def test_ground_truth_holds_every_client_fault_and_the_targets(run: Run):
    truth = dict(run.truth.group_by("source", "kind").len().select(
        pl.concat_str("source", "kind", separator=":"), "len").iter_rows())
    events = dict(run.of("fault").group_by("status").len().iter_rows())
    for kind in ("delay", "drop", "duplicate", "reorder", "schema_drift", "malformed",
                 "disconnect"):
        assert truth[f"client:{kind}"] == events[kind]
    assert truth["client:burst"] == 1
    assert truth.get("target:error", 0) == run.of("error", "error_reply").height > 0
    delays = run.truth.filter(pl.col("kind") == "delay")
    assert ((delays["end"] - delays["start"]).dt.total_milliseconds() >= 40).all()
    assert run.truth.filter(pl.col("source") == "client")["conn"].null_count() == 1  # burst


def test_fault_rows_carry_the_message_they_hit(run: Run, tmp_path: Path):
    rows = run.of("fault").filter(pl.col("status").is_in(["delay", "drop", "malformed"]))
    assert rows["cid"].null_count() == 0
    assert rows["seq"].null_count() == 0
    assert rows["error"].null_count() == 0  # the detail
