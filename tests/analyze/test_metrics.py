from __future__ import annotations

import polars as pl
import pytest

from streambench.analyze import metrics
from tests.analyze.helpers import T0_NS, InjectedFault, SyntheticRun, events, exchange, synth_run


def test_latency_percentiles_are_exact_nearest_rank() -> None:
    rows = [r for i in range(1000) for r in exchange(i, i * 0.01, float(i + 1))]
    run = metrics(events(rows)).run
    assert (run["p50_ms"], run["p90_ms"], run["p95_ms"]) == (500.0, 900.0, 950.0)
    assert (run["p99_ms"], run["p999_ms"], run["max_ms"]) == (990.0, 999.0, 1000.0)
    assert run["sent"] == run["received"] == 1000
    assert run["mean_ms"] == pytest.approx(500.5)


def test_windows_count_at_intended_time_and_fill_empty_windows() -> None:
    rows = [r for i, t in enumerate([0.1, 0.2, 1.5, 3.5]) for r in exchange(i, t, 5.0)]
    rows.append({"t": 0.3, "intended": 0.3, "kind": "send", "seq": 9})  # never answered
    rows.append({"t": 7.3, "intended": 2.3, "kind": "timeout", "seq": 8, "error": "timeout"})
    table = metrics(events(rows), window=1.0).windows
    assert table["w"].to_list() == list(range(8))
    assert table["sent"].to_list()[:4] == [3, 1, 0, 1]
    assert table["timeouts"].to_list()[:3] == [0, 0, 1]  # fired at 7.3 s, belongs at 2.3 s
    assert table["lost"].to_list()[:3] == [1, 0, 1]
    assert table["p50_ms"][2] is None


def test_sends_without_answer_count_as_lost_only_once_the_timeout_passed() -> None:
    rows = [r for i in range(10) for r in exchange(i, float(i), 2.0)]
    rows += [{"t": 1.5, "intended": 1.5, "kind": "send", "seq": 100},
             {"t": 8.5, "intended": 8.5, "kind": "send", "seq": 101}]  # fmt: skip
    run = metrics(events(rows), manifest={"scenario": {"load": {"timeout": 5}}}).run
    assert run["lost"] == 1  # seq 100: due; seq 101: capture ended within its timeout


def test_duplicates_reordering_and_schedule_lag() -> None:
    rows = [r for i in range(6) for r in exchange(i, i * 0.1, 1.0)]
    rows.append({**exchange(2, 0.2, 3.0)[1]})  # a second reply for seq 2
    rows = [r for r in rows if not (r["kind"] == "recv" and r["seq"] == 4)]
    rows.append({**exchange(4, 0.4, 250.0)[1]})  # seq 4 arrives after seq 5
    rows[0]["sent_ns"] = T0_NS + 2_000_000  # 2 ms late
    run = metrics(events(rows)).run
    assert (run["duplicates"], run["out_of_order"]) == (1, 1)
    assert run["lag_max_ms"] == pytest.approx(2.0)


def test_schema_fingerprints_say_which_fields_were_seen_when() -> None:
    rows = [r for i in range(4) for r in exchange(i, float(i), 1.0)]
    rows[5]["payload"] = '{"seq": 2, "cid": "0-2", "body": {"x": 1}}'
    rows[7]["payload"] = "not json at all"
    schemas = metrics(events(rows)).schemas
    seen = dict(zip(schemas["fingerprint"], schemas["count"], strict=True))
    assert seen == {"cid,seq,text": 2, "body,cid,seq,x": 1, "<non-json>": 1}
    first = dict(zip(schemas["fingerprint"], schemas["first_seen"], strict=True))
    assert first["body,cid,seq,x"] == T0_NS + 2 * 1_000_000_000


def test_connection_churn_ignores_opening_and_tear_down() -> None:
    rows = [r for i in range(5) for r in exchange(i, float(i), 1.0)]
    rows += [
        {"t": -0.1, "kind": "connect"},
        {"t": 2.5, "kind": "disconnect", "status": "1006"},
        {"t": 2.7, "kind": "connect"},
        {"t": 9.0, "kind": "disconnect", "status": "1000"},
    ]
    run = metrics(events(rows)).run  # fmt: skip
    assert (run["connects"], run["reconnects"], run["disconnects"]) == (2, 1, 1)


def test_synthetic_run_metrics_and_other_window_lengths() -> None:
    frame, _, manifest = synth_run(SyntheticRun(duration=20, faults=(
        InjectedFault("error", 5, 2, 0.5),)))  # fmt: skip
    measured = metrics(frame.lazy(), manifest=manifest, window=2.0)
    assert measured.run["run_id"] == "synthetic"
    assert measured.run["scenario"] == "synthetic"
    assert measured.run["sent"] == 4000
    assert measured.run["errors"] == pytest.approx(200, rel=0.2)
    assert measured.windows.filter("active")["throughput_sent"].mean() == pytest.approx(200, 0.01)
    assert measured.windows_for(5.0).height < measured.windows.height
    doc = measured.to_dict()
    assert doc["windows"][1]["start"].endswith("Z")
    assert doc["run"]["sent"] == 4000


def test_empty_run_gives_empty_metrics() -> None:
    empty = events([{"t": 0.0, "kind": "connect"}]).filter(pl.col("kind") == "send")
    run = metrics(empty).run
    assert run["sent"] == 0 if "sent" in run else True
