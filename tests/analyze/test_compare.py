from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streambench.analyze import compare_runs, metrics
from streambench.analyze.compare import Tolerance
from streambench.cli import main
from streambench.errors import ConfigError
from tests.analyze.helpers import InjectedFault, SyntheticRun, synth_run, write_synthetic


def measure(**options):
    frame, _, manifest = synth_run(SyntheticRun(duration=30, **options))
    return metrics(frame.lazy(), manifest=manifest)


def verdicts(result) -> dict[str, str]:
    return {c.metric: c.verdict for c in result.changes}


def test_same_service_is_unchanged_and_slower_is_regressed() -> None:
    base, same, slower = measure(seed=1), measure(seed=2), measure(seed=3, latency_ms=8.0)
    assert set(verdicts(compare_runs(base, same)).values()) == {"unchanged"}
    result = compare_runs(base, slower)
    assert verdicts(result)["p50_ms"] == "regressed"
    assert result.regressed
    p50 = next(c for c in result.changes if c.metric == "p50_ms")
    assert p50.ci_low < p50.change < p50.ci_high
    assert p50.change_pct == pytest.approx(60, abs=10)
    assert verdicts(compare_runs(slower, base))["p50_ms"] == "improved"


def test_loss_and_tolerances() -> None:
    base = measure(seed=1)
    lossy = measure(seed=2, faults=(InjectedFault("drop", 5, 20, 0.05),))
    assert verdicts(compare_runs(base, lossy))["loss_rate"] == "regressed"
    loose = compare_runs(base, lossy, tolerances={"loss_rate": Tolerance(0, 0.5)})
    assert verdicts(loose)["loss_rate"] == "unchanged"


def test_baseline_of_several_runs_and_scenario_refusal() -> None:
    pooled = compare_runs([measure(seed=1), measure(seed=2)], measure(seed=3, latency_ms=8.0))
    assert pooled.baseline_runs == ("synthetic", "synthetic")
    assert verdicts(pooled)["p99_ms"] == "regressed"
    other = measure(seed=4, scenario="other")
    with pytest.raises(ConfigError, match="different scenarios"):
        compare_runs(measure(seed=1), other)
    assert compare_runs(measure(seed=1), other, force=True).scenario == "other"


def test_cli_gate_and_last_n(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = str(tmp_path)
    for day in (1, 2, 3):
        write_synthetic(tmp_path, run_id=f"base{day}", seed=day, duration=20,
                        start=datetime(2024, 1, day, tzinfo=UTC))  # fmt: skip
    write_synthetic(tmp_path, run_id="cand", seed=9, duration=20, latency_ms=9.0,
                    start=datetime(2024, 1, 4, tzinfo=UTC))  # fmt: skip
    write_synthetic(tmp_path, run_id="elsewhere", scenario="other", duration=20)
    assert main(["compare", "base1", "base2", "--gate", "--store", store]) == 0
    assert main(["compare", "base3", "cand", "--gate", "--store", store]) == 1
    assert "regressed" in capsys.readouterr().out
    assert main(["compare", "auto", "cand", "--last", "2", "--json", "--store", store]) == 0
    assert '"baseline_runs": [\n    "base2",\n    "base3"\n  ]' in capsys.readouterr().out
    assert main(["compare", "base1", "elsewhere", "--store", store]) == 2
    assert "different scenarios" in capsys.readouterr().err
    assert main(["compare", "base1", "elsewhere", "--force", "--store", store]) == 0
