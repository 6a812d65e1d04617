"""One percentile definition (exact nearest rank), and every place that shows a
percentile agrees with it on the same real Parquet run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streambench import stats
from streambench.analyze import check_slo, compare_runs, metrics
from streambench.analyze.summary import summarize
from streambench.capture.schema import Kind
from streambench.capture.store import Store
from streambench.generate.engine.progress import ProgressTracker
from streambench.report import tables
from tests.analyze.helpers import InjectedFault, events, exchange, write_synthetic

PERCENTILES = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99, "p999_ms": 0.999}


def test_the_issue_example_is_the_largest_value_not_an_interpolation() -> None:
    assert stats.percentile([1, 2, 3, 4, 100], 0.9) == 100.0
    assert stats.percentile([4, 100, 1, 3, 2], 0.5) == 3.0
    assert stats.percentile([], 0.5) is None
    assert stats.rank(100, 0.07) == 7  # 0.07 * 100 is 7.000000000000001 in binary


def test_polars_gives_our_rank_for_every_group_size() -> None:
    sizes = np.concatenate([np.arange(1, 2001), [65_536, 99_999, 100_000, 123_457]])
    frame = pl.DataFrame({"g": np.repeat(np.arange(len(sizes)), sizes),
                          "v": np.concatenate([np.arange(n, dtype=float) for n in sizes])})
    for q in (*stats.QUANTILES.values(), 0.0, 0.07, 0.55, 0.123456, 0.999999, 1.0):
        got = frame.group_by("g").agg(x=stats.nearest_rank_expr(pl.col("v"), q)).sort("g")["x"]
        assert got.to_list() == [stats.rank(int(n), q) - 1.0 for n in sizes], q


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
       st.floats(0.0, 1.0).map(lambda q: round(q, 6)))  # fmt: skip
def test_the_value_has_at_least_q_of_the_values_at_or_below_it(values: list, q: float) -> None:
    value = stats.percentile(values, q)
    ordered = sorted(values)
    at_or_below = sum(v <= value for v in values)
    assert value in values
    assert at_or_below >= round(q * len(values), 6)
    smaller = [v for v in ordered if v < value]
    assert not smaller or sum(v <= smaller[-1] for v in values) < round(q * len(values), 6)
    frame = pl.DataFrame({"v": values})
    assert frame.select(stats.nearest_rank_expr(pl.col("v"), q)).item() == value


def test_small_run_percentiles_match_the_issue_example_everywhere() -> None:
    rows = [r for i, ms in enumerate([1.0, 2.0, 3.0, 4.0, 100.0]) for r in exchange(i, i, ms)]
    lazy = events(rows)
    assert summarize(lazy, {})["latency_ms"]["p90"] == 100.0
    measured = metrics(lazy)
    assert measured.run["p90_ms"] == 100.0
    verdict = check_slo(measured, slo={"p90_ms": 61.6}).objectives[0]
    assert (verdict.measured, verdict.verdict) == (100.0, "fail")
    assert _live_p95([1.0, 2.0, 3.0, 4.0, 100.0]) == 100.0


def _live_p95(latencies_ms: list[float] | np.ndarray) -> float | None:
    """The p95 the live progress line shows for one flush of replies with these latencies."""
    rows = [(Kind.RECV, 10**12 + round(ms * 1e6), 0, i, None, 10**12, 10**12)
            for i, ms in enumerate(latencies_ms)]  # fmt: skip
    return ProgressTracker(total_s=1.0).update(rows).p95_ms


@pytest.fixture(scope="module")
def parquet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, np.ndarray]:
    root = tmp_path_factory.mktemp("store")
    write_synthetic(root, run_id="pct", duration=20, rate=150,
                    faults=(InjectedFault("delay", 8, 3, 40),))  # fmt: skip
    store = Store(root)
    table = pq.read_table(Path(root, "events"), filters=[("kind", "=", "recv")])
    latencies = np.sort(table["latency_ms"].drop_null().to_numpy())
    return store, "pct", latencies


def test_summary_metrics_slo_compare_and_reports_agree_on_a_parquet_run(
    parquet_run: tuple[Store, str, np.ndarray],
) -> None:
    store, run_id, latencies = parquet_run
    expected = {name: stats.nearest_rank(latencies, q) for name, q in PERCENTILES.items()}
    manifest = store.manifest(run_id)
    measured = metrics(store.events(run_id), manifest=manifest)
    assert {name: measured.run[name] for name in PERCENTILES} == expected

    summary = summarize(store.events(run_id), manifest)["latency_ms"]
    assert {f"{k[:-3]}": summary[k[:-3]] for k in PERCENTILES} == {
        k[:-3]: round(v, 3) for k, v in expected.items()}  # fmt: skip

    judged = {name: value for name, value in expected.items() if name != "p999_ms"}
    slo = check_slo(measured, slo=judged)
    assert {o.name: (o.measured, o.verdict) for o in slo.objectives} == {
        name: (value, "pass") for name, value in judged.items()}  # fmt: skip

    compared = compare_runs(measured, measured, resamples=20)
    values = {c.metric: (c.baseline, c.candidate) for c in compared.changes}
    assert {name: values[name] for name in PERCENTILES} == {
        name: (value, value) for name, value in expected.items()}  # fmt: skip

    assert _live_p95(latencies) == expected["p95_ms"]
    table = pq.read_table(Path(store.root, "events"))  # as the writer thread hands it over
    assert ProgressTracker(total_s=1.0).update_table(table).p95_ms == expected["p95_ms"]

    curve = tables.percentiles({run_id: store.events(run_id)})
    for q, value in zip(curve["percentile"], curve["latency_ms"], strict=True):
        assert value == stats.nearest_rank(latencies, q / 100)


def test_every_window_quantile_is_the_same_definition(
    parquet_run: tuple[Store, str, np.ndarray],
) -> None:
    store, run_id, _ = parquet_run
    measured = metrics(store.events(run_id), manifest=store.manifest(run_id))
    replies = (
        store.events(run_id).filter(pl.col("kind") == "recv")
        .select(w=(pl.col("intended_ns") - measured.origin(10**9)) // 10**9,
                latency_ms="latency_ms")
        .collect()
    )  # fmt: skip
    by_window = {w: part["latency_ms"].to_numpy()
                 for (w,), part in replies.partition_by("w", as_dict=True).items()}  # fmt: skip
    checked = 0
    for row in measured.windows.filter(pl.col("replies") > 0).iter_rows(named=True):
        values = by_window[row["w"]]
        assert [row[name] for name in PERCENTILES] == [
            stats.percentile(values, q) for q in PERCENTILES.values()]  # fmt: skip
        checked += 1
    assert checked >= 19
