"""Runs across time: the tables behind the nightly, anomaly-study and comparison reports.

Each run is measured once (:func:`streambench.analyze.metrics`), judged against
its SLOs and scanned by the anomaly rules; :func:`run_history` keeps one row per
run with the headline numbers, the verdict of every objective and the anomaly
fingerprints found. Everything else here reshapes that table. Nothing is
written to the store (the knowledge base is only read).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from streambench.capture.manifest import parse_time
from streambench.capture.store import Store

_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}
_WORST = pl.col("severity").sort_by(pl.col("severity").replace_strict(_RANK, default=0)).last()
HEADLINE = ("sent", "p50_ms", "p95_ms", "p99_ms", "error_rate", "throughput_recv")


def pick_runs(store: Store, *, scenario: str | None = None, last: int = 10,
              since_s: float | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Manifests of the last ``last`` runs of each scenario (or of ``scenario``),
    optionally only those started in the last ``since_s`` seconds; oldest first."""
    cutoff = datetime.now(UTC) - timedelta(seconds=since_s) if since_s else None
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for manifest in store.runs(scenario=scenario):
        started = parse_time(manifest.get("started"))
        if cutoff is not None and (started is None or started < cutoff):
            continue
        name = str((manifest.get("scenario") or {}).get("name", ""))
        by_scenario.setdefault(name, []).append(manifest)
    chosen = [m for runs in by_scenario.values() for m in runs[-last:]]
    return sorted(chosen, key=lambda m: str(m.get("started", "")))


def previous_runs(store: Store, run_id: str, *, last: int = 1) -> list[str]:
    """The last ``last`` completed runs of ``run_id``'s scenario that started before
    it, oldest first (the default baseline of a comparison)."""
    manifest = store.manifest(run_id)
    name = (manifest.get("scenario") or {}).get("name")
    earlier = [m for m in store.runs(scenario=name) if m.get("status") == "completed"
               and str(m.get("started", "")) < str(manifest.get("started", ""))
               and m["run_id"] != manifest["run_id"]]  # fmt: skip
    return [str(m["run_id"]) for m in earlier[-last:]] if last > 0 else []


def assess(store: Store, manifest: dict[str, Any]) -> dict[str, Any]:
    """One run measured, judged and scanned: a row of :func:`run_history`."""
    from streambench.analyze import check_slo, detect_anomalies, metrics

    run_id = str(manifest["run_id"])
    measured = metrics(store.events(run_id), manifest=manifest, health=store.health(run_id))
    slo = check_slo(measured, manifest=manifest)
    anomalies = detect_anomalies(measured, manifest=manifest, fixes=())
    return {
        "run_id": run_id,
        "scenario": str((manifest.get("scenario") or {}).get("name", "")),
        "started": parse_time(manifest.get("started")),
        "status": manifest.get("status"),
        **{name: _float(measured.run.get(name)) for name in HEADLINE},
        "slo_passed": slo.passed if slo.objectives else None,
        "slo": [{"check": o.name, "verdict": o.verdict, "detail": f"{o.target}; measured "
                 f"{_num(o.measured)}"} for o in slo.objectives],
        "anomalies": [{"fingerprint": a.fingerprint, "rule": a.rule, "severity": a.severity,
                       "start": a.start, "end": a.end} for a in anomalies],
    }


def run_history(store: Store, *, scenario: str | None = None, last: int = 10,
                since_s: float | None = None) -> pl.DataFrame:  # fmt: skip
    """One row per run of :func:`pick_runs`: ``run_id``, ``scenario``, ``started``,
    ``status``, the headline metrics, ``slo_passed`` and the nested ``slo`` verdicts
    and ``anomalies`` (see :func:`assess`)."""
    rows = [assess(store, m) for m in pick_runs(store, scenario=scenario, last=last,
                                                 since_s=since_s)]  # fmt: skip
    if not rows:
        return pl.DataFrame(schema={"run_id": pl.String, "scenario": pl.String,
                                    "started": pl.Datetime("us", "UTC")})  # fmt: skip
    return pl.DataFrame(rows).sort("started")


def slo_grid(history: pl.DataFrame) -> pl.DataFrame:
    """Verdict cells for :func:`streambench.report.charts.verdict_grid`: ``run``,
    ``check``, ``passed``, ``detail`` (runs labelled scenario/short id)."""
    rows = [{"run": _label(r), "check": c["check"], "passed": c["verdict"] == "pass",
             "detail": c["detail"]}
            for r in history.iter_rows(named=True) for c in r.get("slo") or []]  # fmt: skip
    return pl.DataFrame(rows, schema={"run": pl.String, "check": pl.String,
                                      "passed": pl.Boolean, "detail": pl.String})  # fmt: skip


def occurrences(history: pl.DataFrame) -> pl.DataFrame:
    """One row per (run, fingerprint): ``run_id``, ``scenario``, ``started``,
    ``fingerprint``, ``rule``, ``severity`` (worst), ``count``, ``seconds`` (total),
    ``first`` (when its first incident in the run began)."""
    rows = [{"run_id": r["run_id"], "scenario": r["scenario"], "started": r["started"], **a}
            for r in history.iter_rows(named=True) for a in r.get("anomalies") or []]
    schema = {"run_id": pl.String(), "scenario": pl.String(),
              "started": pl.Datetime("us", "UTC"), "fingerprint": pl.String(),
              "rule": pl.String(), "severity": pl.String(), "start": pl.Int64(),
              "end": pl.Int64()}  # fmt: skip
    frame = pl.DataFrame(rows, schema=schema)
    return frame.group_by("run_id", "scenario", "started", "fingerprint", "rule").agg(
        severity=_WORST, count=pl.len(),
        seconds=((pl.col("end") - pl.col("start")) / 1e9).sum(),
        first=pl.from_epoch(pl.col("start").min(), "ns").dt.replace_time_zone("UTC"),
    ).sort("started", "fingerprint")  # fmt: skip


def recurrence(history: pl.DataFrame) -> pl.DataFrame:
    """Per fingerprint: ``runs`` it appeared in, of ``scanned`` runs of its scenario,
    first and last run, and ``status``: new (only in the scenario's latest run),
    recurring (latest run and earlier ones) or gone (not in the latest run)."""
    found = occurrences(history)
    latest = history.group_by("scenario").agg(latest=pl.col("run_id").sort_by("started").last(),
                                              scanned=pl.len())  # fmt: skip
    per = found.group_by("scenario", "fingerprint").agg(
        rule=pl.col("rule").first(), runs=pl.col("run_id").n_unique(),
        first_run=pl.col("run_id").sort_by("started").first(),
        last_run=pl.col("run_id").sort_by("started").last(),
    ).join(latest, on="scenario", how="left")  # fmt: skip
    status = (pl.when(pl.col("last_run") != pl.col("latest")).then(pl.lit("gone"))
              .when(pl.col("runs") == 1).then(pl.lit("new")).otherwise(pl.lit("recurring")))
    return per.with_columns(status=status).drop("latest").sort("scenario", "fingerprint")


def trend_table(history: pl.DataFrame) -> pl.DataFrame:
    """The headline metrics per run, ready for :func:`streambench.report.charts.trend`."""
    return history.select("run_id", "scenario", "started", *HEADLINE, "slo_passed")


def _label(row: dict[str, Any]) -> str:
    started = row.get("started")
    stamp = started.strftime("%m-%d %H:%M:%S") if isinstance(started, datetime) else ""
    return f"{row['scenario']} {stamp} {str(row['run_id'])[-4:]}"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _num(value: Any) -> str:
    return "nothing" if value is None else f"{value:.4g}"


def study(store: Store, *, fingerprint: str | None = None, run_id: str | None = None,
          last: int = 20, knowledge: Any | None = None) -> dict[str, Any]:  # fmt: skip
    """What the anomaly-study report shows: :func:`fingerprint_study` of ``fingerprint``
    (default: the most recurrent anomaly of ``run_id``, a run id or ``latest``)
    over the last ``last`` runs of its scenario, plus ``history`` (those runs, a
    :func:`run_history`), ``run_id`` and ``store``. ``fingerprint`` is None in
    the result when there is no anomaly to study."""
    scenario = None
    if run_id is not None:
        manifest = store.manifest(run_id)
        run_id, scenario = str(manifest["run_id"]), _scenario_name(manifest)
    elif fingerprint is not None:
        scenario = _scenario_of(fingerprint, knowledge)
    history = run_history(store, scenario=scenario, last=last)
    fingerprint = fingerprint or most_frequent(history, run_id=run_id)
    found = fingerprint_study(store, fingerprint=fingerprint, history=history,
                              knowledge=knowledge)  # fmt: skip
    return {**found, "scenario": found["scenario"] or scenario, "history": history,
            "run_id": run_id, "store": store.root}  # fmt: skip


def _scenario_name(manifest: dict[str, Any]) -> str | None:
    scenario = manifest.get("scenario")
    return scenario.get("name") if isinstance(scenario, dict) else None


def _scenario_of(fingerprint: str, knowledge: Any | None) -> str | None:
    """The scenario a fingerprint was recorded for (knowledge base), else its second
    part (``{rule}:{scenario}...`` is the default template)."""
    if knowledge is not None:
        rows = knowledge.table("occurrences").filter(pl.col("fingerprint") == fingerprint)
        if rows.height and rows["scenario"][-1] is not None:
            return str(rows["scenario"][-1])
    parts = fingerprint.split(":")
    return parts[1] if len(parts) > 1 else None


def fingerprint_study(
    store: Store, *, fingerprint: str | None, history: pl.DataFrame, knowledge: Any | None = None
) -> dict[str, Any]:
    """Everything about one anomaly fingerprint across ``history`` (a :func:`run_history`).

    Keys: ``occurrences`` (its rows of :func:`occurrences`), ``runs``/``scanned``,
    ``mean_gap_s`` (mean time between the starts of the runs it appeared in;
    runs that started within a second of each other count as one start, and
    ``together`` says how many did; None with fewer than two starts),
    ``mean_duration_s`` (how long one incident lasted, on average: the time to
    recover within a run), ``mttr_s`` (mean time to resolve, from the knowledge
    base's recorded fixes; None until a fix is recorded), ``resolutions`` and
    ``feedback`` (knowledge base rows: what fixed it before, what did not work;
    a fix recorded before the problem was first seen cannot have fixed it and
    is left out). With ``fingerprint`` None (nothing to study) every part is empty.
    """
    found = occurrences(history).filter(pl.col("fingerprint") == (fingerprint or ""))
    scenario = found["scenario"][0] if found.height else None
    scanned = history.filter(pl.col("scenario") == scenario).height if scenario else 0
    known = knowledge.show(fingerprint) if knowledge is not None and fingerprint else {}
    instants = _instants(found["started"].unique().sort().to_list())
    gaps = [b - a for a, b in itertools.pairwise(instants)]
    first_seen = _first_seen(found, known)
    resolutions = pl.DataFrame(known.get("resolutions") or [], schema=_RESOLUTIONS,
                               strict=False).filter(pl.col("at") > first_seen)  # fmt: skip
    return {
        "fingerprint": fingerprint,
        "scenario": scenario,
        "occurrences": found,
        "runs": found["run_id"].n_unique(),
        "scanned": scanned,
        "mean_gap_s": sum(gaps) / len(gaps) if gaps else None,
        "together": found["run_id"].n_unique() - len(instants),
        "mean_duration_s": float(found.select(pl.col("seconds").sum()
                                              / pl.col("count").sum()).item())
        if found.height else None,
        "mttr_s": (known.get("summary") or {}).get("mttr_s"),
        "resolutions": resolutions,
        "feedback": pl.DataFrame(known.get("feedback") or [], schema=_FEEDBACK, strict=False),
    }  # fmt: skip


_RESOLUTIONS = {"at": pl.Datetime("ns", "UTC"), "fix": pl.String(), "note": pl.String()}
_FEEDBACK = {"at": pl.Datetime("ns", "UTC"), "fix": pl.String(), "worked": pl.Boolean(),
             "note": pl.String()}  # fmt: skip
_TOGETHER_S = 1.0  # runs started closer than this started "at the same time"


def _instants(starts: list[datetime]) -> list[float]:
    """Distinct start times (epoch s), runs started within a second merged."""
    instants: list[float] = []
    for started in starts:
        at = started.timestamp()
        if not instants or at - instants[-1] >= _TOGETHER_S:
            instants.append(at)
    return instants


def _first_seen(found: pl.DataFrame, known: dict[str, Any]) -> datetime:
    """When the problem was first seen: in these runs or in the knowledge base."""
    times = found["first"].to_list()
    recorded = (known.get("summary") or {}).get("first_seen")
    times += [recorded] if isinstance(recorded, datetime) else []
    return min(times, default=datetime.max.replace(tzinfo=UTC))


def study_headline(found: dict[str, Any]) -> str:
    """One Markdown line naming what a :func:`study` is about (or that there is nothing)."""
    runs = found["history"].height
    where = f"of scenario **{found['scenario']}** in `{found['store']}`"
    if found["fingerprint"] is None:
        target = f"run `{found['run_id']}`" if found["run_id"] else f"the last {runs} runs"
        return (f"**No anomalies** in {target} {where}: nothing to study. Give a "
                "`fingerprint` (see `streambench kb list`) to study one.")
    return f"**Fingerprint** `{found['fingerprint']}` across the last {runs} runs {where}"


def study_text(found: dict[str, Any]) -> str:
    """One Markdown paragraph: recurrence, time between runs, duration, time to resolve."""
    if found["fingerprint"] is None:
        runs = found["history"].height
        return ("The run scanned had no anomaly." if runs == 1 else
                f"None of the {runs} runs scanned had an anomaly.")  # fmt: skip
    together = (f" ({found['together'] + 1} runs started at the same time)"
                if found["together"] else "")  # fmt: skip
    return (f"Seen in **{found['runs']} of {found['scanned']}** runs{together}; mean time "
            f"between runs with it: **{_seconds(found['mean_gap_s'])}**; an incident lasts "
            f"**{_seconds(found['mean_duration_s'])}** on average; mean time to resolve "
            f"(knowledge base): **{_seconds(found['mttr_s'])}**.")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def most_frequent(history: pl.DataFrame, *, run_id: str | None = None) -> str | None:
    """The fingerprint seen in most runs, the most severe first on a tie (only those
    found in ``run_id`` when given)."""
    found = occurrences(history)
    if run_id is not None:
        found = found.filter(pl.col("fingerprint").is_in(
            found.filter(pl.col("run_id") == run_id)["fingerprint"].implode()))
    if found.height == 0:
        return None
    ranked = found.group_by("fingerprint").agg(
        runs=pl.len(), rank=pl.col("severity").replace_strict(_RANK, default=0).max())
    order = ranked.sort(["runs", "rank", "fingerprint"], descending=[True, True, False])
    return str(order["fingerprint"][0])
