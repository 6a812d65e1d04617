"""The anomaly study and its history chart: no anomalies, runs started at the same
instant, long fingerprints."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from streambench.analyze import KnowledgeBase
from streambench.capture.store import Store
from streambench.report import charts, history
from streambench.report.execute import execute_notebook
from tests.analyze.helpers import write_synthetic

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)
S = 1_000_000_000


def _run(run_id: str, started: datetime, *fingerprints: str) -> dict:
    start = int(started.timestamp()) * S + 2 * S
    return {"run_id": run_id, "scenario": "chat", "started": started, "status": "completed",
            "anomalies": [{"fingerprint": fp, "rule": fp.split(":")[0], "severity": "error",
                           "start": start, "end": start + S} for fp in fingerprints]}  # fmt: skip


def test_a_store_without_anomalies_has_nothing_to_study_and_says_so(tmp_path: Path) -> None:
    write_synthetic(tmp_path, run_id="quiet", scenario="chat", duration=8, noise=False)
    store = Store(tmp_path)
    found = history.study(store, run_id="latest", knowledge=KnowledgeBase(store.root))
    assert found["fingerprint"] is None
    assert found["run_id"] == "quiet"
    headline, text = history.study_headline(found), history.study_text(found)
    assert headline.startswith("**No anomalies** in run `quiet` of scenario **chat**")
    assert text == "The run scanned had no anomaly."
    assert "None" not in headline + text
    assert "0 of 0" not in headline + text


def test_runs_started_at_the_same_instant_have_no_zero_gap_and_no_fix_before_its_problem(
    tmp_path: Path,
) -> None:
    runs = pl.DataFrame([_run("a", T0, "reply-stall:chat"), _run("b", T0, "reply-stall:chat"),
                         _run("c", T0, "reply-stall:chat")])  # fmt: skip
    knowledge = KnowledgeBase(tmp_path)
    knowledge.resolve("reply-stall:chat", fix="raise-server-workers", at=T0)  # before it began
    found = history.fingerprint_study(Store(tmp_path), fingerprint="reply-stall:chat",
                                      history=runs, knowledge=knowledge)  # fmt: skip
    assert (found["runs"], found["together"], found["mean_gap_s"]) == (3, 2, None)
    assert found["resolutions"].height == 0
    assert found["mttr_s"] is None
    text = history.study_text({**found, "history": runs})
    assert "(3 runs started at the same time)" in text
    assert "0.0 s" not in text


def test_a_fix_after_the_problem_counts_and_gaps_are_between_distinct_starts(
    tmp_path: Path,
) -> None:
    later = T0.replace(minute=10)
    runs = pl.DataFrame([_run("a", T0, "reply-stall:chat"), _run("b", T0, "reply-stall:chat"),
                         _run("c", later, "reply-stall:chat")])  # fmt: skip
    knowledge = KnowledgeBase(tmp_path)
    fixed_at = T0.replace(minute=1)
    knowledge.resolve("reply-stall:chat", fix="raise-server-workers", at=fixed_at)
    found = history.fingerprint_study(Store(tmp_path), fingerprint="reply-stall:chat",
                                      history=runs, knowledge=knowledge)  # fmt: skip
    assert found["mean_gap_s"] == 600.0
    assert found["resolutions"]["fix"].to_list() == ["raise-server-workers"]


def test_long_fingerprints_get_short_distinct_labels_and_keep_their_tooltip() -> None:
    head = "error-replies:checkout-service-nightly-soak:upstream service "
    long_a = head + "timed out after # ms while calling the inventory backend (pool exhausted)"
    long_b = head + "timed out after # ms while calling the payments backend (pool exhausted)"
    rows = [{**_run(name, T0.replace(minute=i), fp)} for i, (name, fp) in
            enumerate([("a", long_a), ("b", long_b), ("c", "reply-stall:chat")])]
    table = history.occurrences(pl.DataFrame(rows))
    chart = charts.occurrences(table)
    values = chart.to_dict()["datasets"]
    labels = {r["label"] for data in values.values() for r in data}
    assert len(labels) == 3
    assert all(len(label) <= charts.LABEL_CHARS for label in labels)
    assert "reply-stall:chat" in labels
    assert any(label.startswith("error-replies:") and "…" in label for label in labels)
    svg = charts.to_svg(chart)
    assert all(label in svg for label in labels)  # whole, not cut off by the axis


def test_the_notebook_on_a_run_without_anomalies(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "store", run_id="quiet", scenario="chat", duration=8,
                    noise=False)  # fmt: skip
    output = execute_notebook("anomaly_study", output=tmp_path / "study.ipynb",
                              parameters={"run_id": "latest",
                                          "store": str(tmp_path / "store")})  # fmt: skip
    cells = json.loads(output.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    stderr = [o for o in outputs if o.get("name") == "stderr"]
    assert stderr == []
    text = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "**No anomalies** in run `quiet`" in text
    assert not re.search(r"Fingerprint\*\* `None`|0 of 0", text)
