"""Regression comparison: is the candidate run worse than the baseline?

Per metric: both values, the change, a bootstrap confidence interval of the
change and a verdict. A change is *regressed* when it is worse than the
metric's tolerance (``max(relative x |baseline|, absolute)``) and its whole
confidence interval lies on the worse side of zero; *improved* likewise on the
better side; otherwise *unchanged*. So noise never fails a gate and neither
does a real but tolerated change.

The bootstrap resamples raw latencies (up to ``sample`` per side, drawn from a
deterministic sample of each run, nearest-rank quantiles) for latency metrics,
and whole windows for rates and throughput (so a bursty run is not mistaken
for a precise one). A baseline may be several
runs (the last N of a scenario): their latencies and windows are pooled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from streambench.analyze.measure import Metrics
from streambench.analyze.quantiles import Distribution
from streambench.errors import ConfigError
from streambench.stats import percentiles, rank

QUANTILE_METRICS = {"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99, "p999_ms": 0.999}
RATE_METRICS = {"error_rate": "errors", "timeout_rate": "timeouts", "loss_rate": "lost"}
HIGHER_IS_BETTER = frozenset({"throughput_recv", "throughput_sent"})
DEFAULT_METRICS = (*QUANTILE_METRICS, "error_rate", "loss_rate", "throughput_recv")


@dataclass(frozen=True)
class Tolerance:
    """A change smaller than ``max(relative x |baseline|, absolute)`` is unchanged."""

    relative: float = 0.10
    absolute: float = 0.0

    def allows(self, baseline: float) -> float:
        return max(self.relative * abs(baseline), self.absolute)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    **{name: Tolerance(0.10, 1.0) for name in QUANTILE_METRICS},
    **{name: Tolerance(0.0, 0.001) for name in RATE_METRICS},
    "throughput_recv": Tolerance(0.05, 0.0),
    "throughput_sent": Tolerance(0.05, 0.0),
}


@dataclass(frozen=True)
class MetricChange:
    metric: str
    baseline: float | None
    candidate: float | None
    change: float | None  # candidate - baseline
    ci_low: float | None
    ci_high: float | None
    verdict: str  # regressed | improved | unchanged | no-data
    tolerance: float
    better: str  # lower | higher

    @property
    def change_pct(self) -> float | None:
        if self.change is None or not self.baseline:
            return None
        return 100.0 * self.change / abs(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "baseline": self.baseline, "candidate": self.candidate,
                "change": self.change, "change_pct": self.change_pct,
                "ci": [self.ci_low, self.ci_high], "verdict": self.verdict,
                "tolerance": self.tolerance, "better": self.better}  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    baseline_runs: tuple[str | None, ...]
    candidate_run: str | None
    scenario: str | None
    confidence: float
    changes: tuple[MetricChange, ...] = field(default=())

    @property
    def regressed(self) -> bool:
        return any(c.verdict == "regressed" for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"baseline_runs": list(self.baseline_runs), "candidate_run": self.candidate_run,
                "scenario": self.scenario, "confidence": self.confidence,
                "regressed": self.regressed,
                "changes": [c.to_dict() for c in self.changes]}  # fmt: skip


def _latencies(runs: Sequence[Metrics], sample: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``sample`` raw latencies, drawn evenly from each run's own sample."""
    values = np.concatenate([m.latency_sample(sample) for m in runs])
    return rng.choice(values, sample, replace=False) if len(values) > sample else values


def _windows(runs: Sequence[Metrics]) -> pl.DataFrame:
    return pl.concat([m.windows.filter("active") for m in runs], how="vertical_relaxed")


def _nearest_rank(sorted_rows: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile of each ascending row (:mod:`streambench.stats`' definition)."""
    return sorted_rows[..., rank(sorted_rows.shape[-1], q) - 1]


class _Bootstrap:
    """Resampled statistics of one side (baseline or candidate)."""

    def __init__(self, runs: Sequence[Metrics], *, resamples: int, sample: int, seed: int):
        rng = np.random.default_rng(seed)
        self.latency = np.sort(_latencies(runs, sample, rng))
        self.windows = _windows(runs)
        self.runs = runs
        n = len(self.latency)
        self.latency_draws = (
            np.sort(self.latency[rng.integers(0, n, (resamples, n))], axis=1) if n else None
        )
        self.window_draws = rng.integers(0, max(self.windows.height, 1),
                                         (resamples, self.windows.height))  # fmt: skip

    def value(self, metric: str) -> float | None:
        """The metric over all runs of this side, exact (latencies pooled)."""
        if metric in QUANTILE_METRICS:
            if len(self.runs) == 1:
                return self.runs[0].run.get(metric)
            return self._pooled_quantile(metric)
        if metric in RATE_METRICS:
            sent = sum(m.run.get("sent") or 0 for m in self.runs)
            return sum(m.run.get(RATE_METRICS[metric]) or 0 for m in self.runs) / max(sent, 1)
        values = [float(v) for m in self.runs if (v := m.run.get(metric)) is not None]
        return float(np.mean(values)) if values else None

    def _pooled_quantile(self, metric: str) -> float | None:
        pooled = Distribution.pooled([m.latency for m in self.runs])
        return pooled.quantiles([QUANTILE_METRICS[metric]])[0]

    def draws(self, metric: str) -> np.ndarray | None:
        if metric in QUANTILE_METRICS:
            if self.latency_draws is None:
                return None
            return _nearest_rank(self.latency_draws, QUANTILE_METRICS[metric])
        if self.windows.height == 0:
            return None
        if metric in RATE_METRICS:
            counts = self.windows[RATE_METRICS[metric]].to_numpy()[self.window_draws]
            sent = self.windows["sent"].to_numpy()[self.window_draws]
            rates: np.ndarray = counts.sum(axis=1) / np.maximum(sent.sum(axis=1), 1)
            return rates
        means: np.ndarray = self.windows[metric].to_numpy()[self.window_draws].mean(axis=1)
        return means


def _verdict(metric: str, change: float, low: float, high: float, allowed: float) -> str:
    sign = -1 if metric in HIGHER_IS_BETTER else 1  # +: worse
    worse = change * sign
    lo, hi = sorted((low * sign, high * sign))
    if worse > allowed and lo > 0:
        return "regressed"
    if -worse > allowed and hi < 0:
        return "improved"
    return "unchanged"


def _scenarios(runs: Sequence[Metrics]) -> set[str]:
    return {m.scenario for m in runs if m.scenario}


def _change(metric: str, base: _Bootstrap, cand: _Bootstrap, *, tolerance: Tolerance,
            confidence: float) -> MetricChange:  # fmt: skip
    better = "higher" if metric in HIGHER_IS_BETTER else "lower"
    before, after = base.value(metric), cand.value(metric)
    base_draws, cand_draws = base.draws(metric), cand.draws(metric)
    if before is None or after is None or base_draws is None or cand_draws is None:
        return MetricChange(metric, before, after, None, None, None, "no-data", 0.0, better)
    diffs = cand_draws - base_draws
    tail = (1 - confidence) / 2
    low, high = percentiles(diffs, [tail, 1 - tail])
    if low is None or high is None:  # no resamples
        return MetricChange(metric, before, after, None, None, None, "no-data", 0.0, better)
    allowed = tolerance.allows(before)
    change = after - before
    verdict = _verdict(metric, change, low, high, allowed)
    return MetricChange(metric, before, after, change, low, high, verdict, allowed, better)


def compare_runs(
    baseline: Metrics | Sequence[Metrics],
    candidate: Metrics,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    tolerances: Mapping[str, Tolerance] | None = None,
    confidence: float = 0.95,
    resamples: int = 400,
    sample: int = 10_000,
    force: bool = False,
    seed: int = 0,
) -> Comparison:
    """Compare ``candidate`` with ``baseline`` (one run's metrics, or several pooled).

    ``metrics`` names run-level metrics (latency quantiles, ``error_rate``,
    ``timeout_rate``, ``loss_rate``, ``throughput_recv``, ``throughput_sent``);
    ``tolerances`` overrides :data:`DEFAULT_TOLERANCES` per metric. Runs of
    different scenarios raise :class:`ConfigError` unless ``force``.
    """
    baselines = [baseline] if isinstance(baseline, Metrics) else list(baseline)
    if not baselines:
        raise ConfigError("compare: no baseline runs")
    names = _scenarios(baselines) | _scenarios([candidate])
    if len(names) > 1 and not force:
        raise ConfigError(
            f"refusing to compare runs of different scenarios ({', '.join(sorted(names))}); "
            "use --force (force=True) to compare anyway"
        )
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    base = _Bootstrap(baselines, resamples=resamples, sample=sample, seed=seed)
    cand = _Bootstrap([candidate], resamples=resamples, sample=sample, seed=seed + 1)
    changes = tuple(
        _change(m, base, cand, tolerance=tolerances.get(m, Tolerance()), confidence=confidence)
        for m in metrics
    )
    return Comparison(
        baseline_runs=tuple(m.run_id for m in baselines),
        candidate_run=candidate.run_id,
        scenario=candidate.scenario,
        confidence=confidence,
        changes=changes,
    )
