from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streambench.analyze import KnowledgeBase, load_fixes, suggest_fixes
from streambench.analyze.types import Anomaly
from streambench.cli import main
from tests.analyze.helpers import T0_NS, S


def anomaly(run_id: str, start_s: float, *, rule="reply-stall", kind="stall", fp="stall:chat",
            strength: float = 1.0) -> Anomaly:  # fmt: skip
    return Anomaly(rule=rule, kind=kind, severity="critical", start=T0_NS + int(start_s * S),
                   end=T0_NS + int((start_s + 3) * S), fingerprint=fp,
                   evidence={"silence_s": 3.0}, strength=strength, run_id=run_id)  # fmt: skip


def test_recurrence_first_last_seen_and_idempotent_recording(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path)
    assert kb.record([anomaly("r1", 10), anomaly("r1", 50)], scenario="chat") == 2
    assert kb.record([anomaly("r1", 10)], scenario="chat") == 0  # already known
    assert kb.record([anomaly("r2", 3600)], scenario="chat") == 1
    (row,) = KnowledgeBase(tmp_path).summary().to_dicts()  # read back from Parquet
    assert (row["occurrences"], row["runs"], row["resolutions"]) == (3, 2, 0)
    assert row["first_seen"] == datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert row["last_seen"] == datetime(2024, 1, 1, 1, 0, 0, tzinfo=UTC)
    assert row["mttr_s"] is None
    assert list((tmp_path / "kb" / "occurrences").glob("part-*.parquet"))


def test_mean_time_to_resolve(tmp_path: Path) -> None:
    kb = KnowledgeBase(tmp_path)
    kb.record([anomaly("r1", 0), anomaly("r2", 100)])
    kb.resolve("stall:chat", fix="raise-server-workers", at=T0_NS + 400 * S, note="more workers")
    kb.record([anomaly("r3", 1000)])
    kb.resolve("stall:chat", fix="check-gc-pauses", at=T0_NS + 1200 * S)
    (row,) = kb.summary().to_dicts()
    assert row["mttr_s"] == pytest.approx((400 + 200) / 2)
    assert (row["resolutions"], row["last_fix"]) == (2, "check-gc-pauses")


def test_feedback_changes_confidence(tmp_path: Path) -> None:
    kb, fixes = KnowledgeBase(tmp_path), load_fixes()
    stall = anomaly("r1", 0, strength=0.8)

    def confidence(fix: str) -> float:
        return {s.fix: s.confidence for s in suggest_fixes(stall, fixes=fixes, knowledge=kb)}[fix]

    before = confidence("raise-server-workers")
    assert before == pytest.approx(0.5 * 0.8)
    kb.add_feedback("stall:chat", fix="raise-server-workers", worked=True)
    kb.add_feedback("stall:chat", fix="raise-server-workers", worked=True)
    assert confidence("raise-server-workers") == pytest.approx(0.4 * 2 * 3 / 4)
    kb.add_feedback("stall:chat", fix="check-gc-pauses", worked=False)
    assert confidence("check-gc-pauses") < 0.35 * 0.8
    best = suggest_fixes(stall, fixes=fixes, knowledge=kb)[0]
    assert best.fix == "raise-server-workers"
    assert "worked 2, did not work 0" in best.why
    assert best.steps


def test_kb_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    KnowledgeBase(tmp_path).record([anomaly("r1", 0)])
    store = ["--store", str(tmp_path)]
    resolve = ["kb", "resolve", "stall:chat", "--fix", "check-gc-pauses", "--note", "x"]
    assert main([*resolve, *store]) == 0
    assert main(["kb", "feedback", "stall:chat", "--fix", "check-gc-pauses", "--did-not-work",
                 *store]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["kb", "list", *store]) == 0
    listing = capsys.readouterr().out
    assert "stall:chat" in listing
    assert "check-gc-pauses" in listing
    assert main(["kb", "show", "stall:chat", "--json", *store]) == 0
    shown = capsys.readouterr().out
    assert '"worked": false' in shown
    assert '"occurrences": 1' in shown


@pytest.mark.parametrize("action", [["resolve", "--fix", "check-gc-pauses"],
                                    ["feedback", "--fix", "check-gc-pauses", "--worked"]])
def test_kb_refuses_an_unknown_fingerprint(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           action: list[str]) -> None:
    KnowledgeBase(tmp_path).record([anomaly("r1", 0)])
    argv = ["kb", action[0], "stall:chta", *action[1:], "--store", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"streambench: error: kb {action[0]}: no fingerprint 'stall:chta' in the "
                   "knowledge base (see `streambench kb list`)\n")
    assert KnowledgeBase(tmp_path).show("stall:chta")["summary"] is None
    assert KnowledgeBase(tmp_path).summary()["resolutions"].to_list() == [0]
