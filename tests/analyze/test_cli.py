from __future__ import annotations

import json
from pathlib import Path

import pytest

from streambench.analyze import KnowledgeBase
from streambench.cli import main
from tests.analyze.helpers import InjectedFault, write_synthetic


@pytest.fixture
def store(tmp_path: Path) -> str:
    write_synthetic(tmp_path, duration=30, faults=(InjectedFault("stall", 10, 3),))
    return str(tmp_path)


def test_metrics_human_and_json(store: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["metrics", "latest", "--store", store, "--window", "5s"]) == 0
    out = capsys.readouterr().out
    assert "p99_ms" in out
    assert "cid,seq,text" in out
    assert main(["metrics", "synthetic", "--store", store, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"]["sent"] == 6000
    assert len(doc["windows"]) == 37  # 23:59:59 (connects) to 00:00:35 (timeouts)


def test_anomalies_json_fail_on_and_knowledge_base(
    store: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["anomalies", "latest", "--store", store, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    stall = next(a for a in found if a["rule"] == "reply-stall")
    assert stall["start"].startswith("2024-01-01T00:00:09.9") or stall["start"].startswith(
        "2024-01-01T00:00:10"
    )
    assert stall["suggestions"][0]["fix"] == "raise-server-workers"
    assert stall["injected"] == ["stall"]
    assert main(["anomalies", "latest", "--store", store, "--fail-on", "critical"]) == 1
    assert "reply-stall" in capsys.readouterr().out
    # recorded once per run, however often the command runs
    assert KnowledgeBase(store).summary().filter(fingerprint="reply-stall:synthetic")[
        "occurrences"
    ].to_list() == [1]


def test_clean_run_passes_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_synthetic(tmp_path, duration=20)
    assert main(["anomalies", "latest", "--store", str(tmp_path), "--fail-on", "info"]) == 0
    assert "no anomalies" in capsys.readouterr().out


def test_unknown_run_and_bad_rules_are_one_line_errors(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["metrics", "nope", "--store", store]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {id: r, kind: stall, min_pending: -1}\n")
    assert main(["anomalies", "latest", "--store", store, "--rules", str(rules)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("streambench: error: ")
    assert "rule 'r' field 'min_pending'" in err
    assert "\n" not in err
