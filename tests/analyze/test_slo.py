from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from streambench.analyze import check_slo, load_slo, metrics, write_junit
from streambench.cli import main
from streambench.errors import ConfigError
from tests.analyze.helpers import (
    InjectedFault,
    SyntheticRun,
    events,
    exchange,
    synth_run,
    write_synthetic,
)


def test_run_level_objectives_have_target_measured_and_verdict() -> None:
    rows = [r for i in range(100) for r in exchange(i, i * 0.1, float(i + 1))]
    rows.append({"t": 3.3, "intended": 3.3, "kind": "error", "seq": 500, "error": "boom"})
    measured = metrics(events(rows))
    report = check_slo(measured, slo={"p50_ms": 60, "p99_ms": 50, "error_rate": 0.001,
                                      "min_throughput": 5})  # fmt: skip
    verdicts = {o.name: (o.measured, o.verdict) for o in report.objectives}
    assert verdicts["p50_ms"] == (50.0, "pass")
    assert verdicts["p99_ms"] == (99.0, "fail")
    assert verdicts["error_rate"] == (pytest.approx(0.01), "fail")
    assert verdicts["min_throughput"][1] == "pass"
    assert not report.passed


def test_windowed_objective_counts_good_windows() -> None:
    frame, _, manifest = synth_run(SyntheticRun(duration=60, faults=(
        InjectedFault("delay", 20, 10, 100),)))  # fmt: skip
    measured = metrics(frame.lazy(), manifest=manifest)
    windows = [{"p95_ms": 50, "window": "10s", "quantile": q} for q in (0.8, 0.9)]
    report = check_slo(measured, slo={"windows": windows})
    loose, strict = report.objectives
    assert loose.measured == pytest.approx(5 / 6)
    assert loose.verdict == "pass"
    assert strict.verdict == "fail"
    assert strict.detail == "5 of 6 windows within the limit"


def test_slo_from_the_manifest_and_from_files(tmp_path: Path) -> None:
    frame, _, manifest = synth_run(SyntheticRun(duration=10))
    manifest["scenario"]["slo"] = {"p99_ms": 1}
    measured = metrics(frame.lazy(), manifest=manifest)
    assert check_slo(measured, manifest=manifest).objectives[0].verdict == "fail"
    path = tmp_path / "slo.yaml"
    path.write_text("slo:\n  p99_ms: 500\n  windows:\n    - {p50_ms: 50, window: 5s}\n")
    assert check_slo(measured, slo=load_slo(path)).passed
    path.write_text("p99_ms: -3\n")
    with pytest.raises(ConfigError, match=r"slo\.yaml: field 'p99_ms'"):
        load_slo(path)
    path.write_text("windows:\n  - {p42_ms: 5}\n")
    with pytest.raises(ConfigError, match=r"field 'windows\[0\]': each window needs exactly one"):
        load_slo(path)


def test_junit_report(tmp_path: Path) -> None:
    rows = [r for i in range(10) for r in exchange(i, i * 0.1, 10.0)]
    report = check_slo(metrics(events(rows)), slo={"p50_ms": 20, "max_ms": 5})
    write_junit(report, tmp_path / "slo.xml")
    root = ET.parse(tmp_path / "slo.xml").getroot()  # noqa: S314 (our own file)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failures = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failures == ["max_ms <= 5 ms"]


def test_cli_exit_codes_json_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "store"
    write_synthetic(store, duration=10)
    slo = tmp_path / "slo.yaml"
    slo.write_text("p99_ms: 1000\nerror_rate: 0.01\n")
    assert main(["slo", "latest", "--store", str(store), "--slo", str(slo)]) == 0
    assert "PASS" in capsys.readouterr().out
    slo.write_text("p50_ms: 1\n")
    junit = tmp_path / "out.xml"
    code = main(["slo", "synthetic", "--store", str(store), "--slo", str(slo), "--json",
                 "--junit", str(junit)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert '"verdict": "fail"' in out
    assert junit.exists()
    slo.write_text("p50_ms: nope\n")
    assert main(["slo", "latest", "--store", str(store), "--slo", str(slo)]) == 2
    assert "slo.yaml: field 'p50_ms'" in capsys.readouterr().err
