"""End-to-end runs against the embedded target: real child process, real sockets, real Parquet."""

from __future__ import annotations

import gc
import weakref

import polars as pl

from streambench.api import run_async
from streambench.capture.store import Store
from tests.helpers import TIME_SCALE, scenario


async def test_a_clean_run_reconciles_every_message(store: Store):
    result = await run_async(scenario(load={"connections": 4, "rate": 400, "duration": "1.5s"}),
                             store=store)
    s = result.summary
    assert result.status == "completed"
    assert s["sent"] == 600
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]
    assert s["received"] == 600
    # every message went out; late ones (a busy machine) only lower the achieved rate
    assert 0.8 / TIME_SCALE <= s["achieved_ratio"] <= 1.03
    events = store.events(result.run_id).collect()
    kinds = dict(events.group_by("kind").len().iter_rows())
    assert kinds == {"connect": 4, "send": 600, "recv": 600, "disconnect": 4}
    assert events["cid"].drop_nulls().n_unique() == 600
    manifest = store.manifest(result.run_id)
    assert manifest["status"] == "completed"
    assert manifest["counts"]["events"] == events.height
    assert manifest["schema_version"] == 1


async def test_added_server_latency_shows_in_p50(store: Store):
    sc = scenario(target={"url": "embedded", "server": {"latency": "20ms"}},
                  load={"connections": 2, "rate": 100, "duration": "2s"})
    result = await run_async(sc, store=store)
    # never less than the added latency; a loopback round trip and timers on top
    assert 20.0 <= result.summary["latency_ms"]["p50"] <= 20.0 + 5.0 * TIME_SCALE
    assert result.summary["received"] == 200


async def test_a_stalling_server_shows_in_p99_and_max_not_in_a_slower_sender(store: Store):
    """Open model: senders keep the schedule while the server stalls, so the stall is measured."""
    sc = scenario(target={"url": "embedded", "server": {"stall_every": "1.5s", "stall_for": "1s"}},
                  load={"connections": 4, "rate": 200, "duration": "4s", "timeout": "3s"})
    result = await run_async(sc, store=store)
    s = result.summary
    assert s["sent"] == 800  # the senders were not slowed down by the stall:
    # a closed-model sender would lag by ~1000 ms (the stall) at every stall
    assert s["schedule_lag_ms"]["max"] < 500 * TIME_SCALE
    assert s["latency_ms"]["max"] > 900
    assert s["latency_ms"]["p99"] > 800
    assert s["latency_ms"]["p50"] < 800  # most messages were outside the stalls
    faults = store.faults(result.run_id).collect()
    stalls = faults.filter(pl.col("kind") == "stall")
    assert stalls.height >= 2  # the target's ground truth is in the store
    assert set(faults["source"]) == {"target"}


async def test_error_replies_and_dropped_replies_are_accounted(store: Store):
    sc = scenario(target={"url": "embedded",
                          "server": {"error_rate": 0.1, "drop_rate": 0.1, "seed": 3}},
                  load={"connections": 2, "rate": 200, "duration": "1s", "timeout": "300ms"})
    result = await run_async(sc, store=store)
    s = result.summary
    assert s["sent"] == 200
    assert s["sent"] == s["received"] + s["errors"] + s["timeouts"]
    assert 5 <= s["errors"] <= 40
    assert 5 <= s["timeouts"] <= 40
    events = store.events(result.run_id).collect()
    errors = events.filter(pl.col("kind") == "error")
    assert set(errors["status"]) == {"error_reply"}
    assert set(errors["error"]) == {"injected error"}
    truth = store.faults(result.run_id).collect()
    assert truth.filter(pl.col("kind") == "drop").height == s["timeouts"]
    assert truth.filter(pl.col("kind") == "error").height == s["errors"]


async def test_payloads_are_redacted_before_disk(store: Store):
    sc = scenario(message={"body": {"email": "{{email}}", "text": "{{sentence}}", "value": 1.5}},
                  capture={"redaction": {"allow": ["value"]}},
                  load={"connections": 1, "rate": 50, "duration": "0.5s"})
    result = await run_async(sc, store=store)
    payloads = store.events(result.run_id).collect()["payload"].drop_nulls()
    assert payloads.len() == 50
    assert not payloads.str.contains("@").any()
    assert payloads.str.contains('"value":1.5').all()
    assert result.manifest["redaction"]  # what was redacted, by rule and count


async def test_objects_from_before_the_schedule_are_left_out_of_gc_until_it_ends(store: Store):
    # A full collection walks every object of the process (~60 ms with polars, pyarrow
    # and grpcio loaded, a stall of the senders); the run freezes what existed before.
    class Node:
        pass

    cycle = Node()
    cycle.me = cycle  # type: ignore[attr-defined]  # garbage only the cyclic GC frees
    alive = weakref.ref(cycle)
    frozen: list[int] = []

    def on_progress(_progress: object) -> None:
        nonlocal cycle
        frozen.append(gc.get_freeze_count())
        if frozen[-1]:  # the schedule runs
            cycle = None  # type: ignore[assignment]  # garbage from here on, but frozen
            gc.collect()

    await run_async(scenario(load={"connections": 1, "rate": 50, "duration": "0.5s"}),
                    store=store, on_progress=on_progress)
    assert frozen[0] > 1000
    assert alive() is not None  # frozen: the collections during the run left it
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None  # after the run it is an ordinary object again
