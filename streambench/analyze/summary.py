"""The run summary: the numbers ``streambench run`` prints and ``--json`` promises.

Exact, from the captured events (no histograms); every percentile is the one
definition of :mod:`streambench.stats` (nearest rank). Contract of the JSON keys:
``run_id``, ``status``, ``sent``, ``received``, ``errors``, ``timeouts``,
``intended_rate``, ``achieved_rate`` and ``latency_ms`` with ``p50``, ``p90``,
``p95``, ``p99``, ``max`` are always present (latencies are null when
nothing was received), plus ``schema_version``.

Reconciliation: every message sent ends as exactly one of received, errors
(error replies and connection losses) or timeouts, so
``sent == received + errors + timeouts``. Messages that were due but could
not be sent are ``send_failures``; replies that match nothing are
``protocol_errors``; neither is part of ``sent``.

``replies`` says how many replies arrived, matched a request, were classified
by the scenario's rules (per rule name) or matched nothing, what an answer had
to carry and one (redacted) sample of an unmatched reply; ``closes`` how
connections ended (see :mod:`streambench.analyze.diagnose`).

``fanout`` (only for a run with ``expect: fanout`` kinds) counts the fan-out
deliveries expected and received, missed, duplicated, late or stray, their
latency from the sender's intended send, the time until the last member got
each message, and the same per group (:mod:`streambench.analyze.fanout`).

``pushes`` says what the server pushed (received, rate, gap and staleness
percentiles, sequence gaps; see :mod:`streambench.analyze.pushes`). A run
that only listens (``sse``, or one that sent nothing and received pushes)
offered no rate: its ``intended_rate`` and ``achieved_ratio`` are null, and the
printed summary shows its pushes instead of a latency.

``generator`` says whether the load generator kept to its schedule: how many
one-second windows were client-bound (its schedule lag explains their
latency, see :mod:`streambench.analyze.generator`), where, and how far behind
it fell; ``warnings`` holds the one line printed about it.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from streambench.analyze.diagnose import (
    closes_summary,
    format_replies,
    mostly_unmatched,
    replies_summary,
    unmatched_line,
)
from streambench.analyze.facts import SLICE_ROWS, load_slice, problem_time, run_facts, slices
from streambench.analyze.fanout import fanout_summary, format_fanout
from streambench.analyze.generator import behind, generator_windows, warning
from streambench.analyze.pushes import format_pushes, push_summary
from streambench.analyze.quantiles import distribution
from streambench.capture.schema import SCHEMA_VERSION
from streambench.capture.status import (
    HTTP_STATUS_ERROR,
    MESSAGE_ERRORS,
    PROTOCOL_ERRORS,
    SEND_ERRORS,
)
from streambench.stats import QUANTILES, nearest_rank_expr

_SECOND = 1_000_000_000


def summarize(
    events: pl.LazyFrame, manifest: dict[str, Any], *, health: pl.LazyFrame | None = None,
    slice_rows: int | None = SLICE_ROWS,
) -> dict[str, Any]:
    """Summarise one run's events; ``manifest`` supplies the scenario and status,
    ``health`` (the run's process health rows, optional) strengthens the
    generator check. Bounded memory (streaming passes, see
    :mod:`streambench.analyze.quantiles`), however long the run."""
    kind, status = pl.col("kind"), pl.col("status")
    recv = kind == "recv"
    send_ts = pl.col("ts").filter(kind == "send")
    row = (
        events.select(
            sent=(kind == "send").sum(),
            received=recv.sum(),
            errors=((kind == "error") & (status.is_in(MESSAGE_ERRORS)
                                         | status.str.contains(HTTP_STATUS_ERROR))).sum(),
            # a member that missed a fan-out message is in ``fanout``, not a sent message
            timeouts=((kind == "timeout") & status.ne_missing("delivery")).sum(),
            send_failures=((kind == "error") & status.is_in(SEND_ERRORS)).sum(),
            protocol_errors=((kind == "error") & status.is_in(PROTOCOL_ERRORS)).sum(),
            connects=(kind == "connect").sum(),
            disconnects=(kind == "disconnect").sum(),
            first_send=send_ts.min(),
            last_send=send_ts.max(),
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )  # fmt: skip
    row |= _percentiles(events)
    pushes = push_summary(events, duration_s=planned_duration(
        manifest.get("scenario", {}).get("load", {})))
    summary = _shape(row, manifest, listening=listens_only(manifest, row["sent"], pushes))
    summary["pushes"] = pushes
    summary["replies"] = replies_summary(events, manifest)
    summary["closes"] = closes_summary(events)
    fanout = fanout_summary(events)
    if fanout is not None:
        summary["fanout"] = fanout
        if not row["sent"] and summary["duration_s"]:  # the load it offered: its broadcasts
            summary["achieved_rate"] = fanout["messages"] / summary["duration_s"]
            intended = summary["intended_rate"]
            summary["achieved_ratio"] = summary["achieved_rate"] / intended if intended else None
    summary["generator"] = _generator(events, health, slice_rows=slice_rows)
    line = warning(summary["generator"])
    summary["warnings"] = [line] if line else []
    if mostly_unmatched(summary["replies"]):
        summary["warnings"].append(unmatched_line(summary["replies"]))
    return summary


def _percentiles(events: pl.LazyFrame) -> dict[str, Any]:
    kind = pl.col("kind")
    latency = distribution([events.filter(kind == "recv").select("latency_ms")])
    lag = distribution([events.filter(kind == "send").select(_lag_ms())])
    service = distribution([events.filter(kind == "recv").select("service_ms")])
    found = dict(zip([f"lat_{k}" for k in QUANTILES],
                     latency.quantiles(list(QUANTILES.values())), strict=True))  # fmt: skip
    found["lag_p50"], found["lag_p99"] = lag.quantiles([0.5, 0.99])
    found["svc_p50"], found["svc_p99"] = service.quantiles([0.5, 0.99])
    return found | {"lat_mean": latency.mean, "lat_max": latency.maximum,
                    "lag_max": lag.maximum}  # fmt: skip


def _lag_ms() -> pl.Expr:
    return (pl.col("sent_ns") - pl.col("intended_ns")) / 1e6


def _generator(events: pl.LazyFrame, health: pl.LazyFrame | None, *,
               slice_rows: int | None) -> dict[str, Any]:  # fmt: skip
    """Schedule lag and latency p99 per one-second window (clock-aligned), judged;
    read one time slice at a time."""
    kind = pl.col("kind")
    columns = [kind.cast(pl.String).alias("kind"), problem_time().alias("at"),
               _lag_ms().alias("lag_ms"), pl.col("latency_ms")]  # fmt: skip
    facts = run_facts(events)
    parts = []
    for start, end in slices(facts, length_ns=_SECOND, slice_rows=slice_rows):
        rows = load_slice(events, columns, facts=facts, start=start, end=end)
        rows = rows.filter("due", pl.col("kind").is_in(["send", "recv"]))
        lag = pl.col("lag_ms").filter(pl.col("kind") == "send")
        parts.append(rows.group_by(w=pl.col("at") // _SECOND).agg(
            sent=(pl.col("kind") == "send").sum(), lag_p99_ms=nearest_rank_expr(lag, 0.99),
            lag_max_ms=lag.max(),
            p99_ms=nearest_rank_expr(pl.col("latency_ms").filter(pl.col("kind") == "recv"),
                                     0.99)))  # fmt: skip
    windows = (pl.concat(parts) if parts else pl.DataFrame(
        schema={"w": pl.Int64, "sent": pl.UInt32, "lag_p99_ms": pl.Float64,
                "lag_max_ms": pl.Float64, "p99_ms": pl.Float64}))  # fmt: skip
    windows = windows.with_columns(start=pl.col("w") * _SECOND)
    samples = health.collect() if health is not None else None
    table = generator_windows(windows, samples, length_ns=_SECOND, origin=0)
    return behind(table, length_ns=_SECOND, origin=0)


def listens_only(manifest: dict[str, Any], sent: int, pushes: dict[str, Any]) -> bool:
    """True for a run that offered no load: it only listened to what the server pushed
    (an ``sse`` target, or nothing sent and pushes received)."""
    protocol = manifest.get("scenario", {}).get("target", {}).get("protocol")
    return protocol == "sse" or (sent == 0 and pushes["received"] > 0)


def _shape(row: dict[str, Any], manifest: dict[str, Any], *, listening: bool = False
           ) -> dict[str, Any]:
    scenario = manifest.get("scenario", {})
    load = scenario.get("load", {})
    duration = planned_duration(load)
    intended = _expected(load) / duration if duration and not listening else None
    span = 0.0
    if row["first_send"] is not None and row["last_send"] is not None:
        span = (row["last_send"] - row["first_send"]).total_seconds()
    achieved = (
        row["sent"] / max(duration or 0.0, span) if row["sent"] and (duration or span) else 0.0
    )
    attempted = row["sent"] + row["send_failures"]
    failed = row["errors"] + row["timeouts"] + row["send_failures"]
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": manifest.get("run_id"),
        "scenario": scenario.get("name"),
        "status": manifest.get("status"),
        "started": manifest.get("started"),
        "ended": manifest.get("ended"),
        "connections": load.get("connections"),
        "duration_s": duration,
        "sent": row["sent"],
        "received": row["received"],
        "errors": row["errors"],
        "timeouts": row["timeouts"],
        "send_failures": row["send_failures"],
        "protocol_errors": row["protocol_errors"],
        "connects": row["connects"],
        "disconnects": row["disconnects"],
        "error_rate": failed / attempted if attempted else 0.0,
        "intended_rate": intended,
        "achieved_rate": achieved,
        "achieved_ratio": achieved / intended if intended else None,
        "latency_ms": {
            **{k: _round(row[f"lat_{k}"]) for k in QUANTILES},
            "max": _round(row["lat_max"]),
            "mean": _round(row["lat_mean"]),
        },
        "service_ms": {"p50": _round(row["svc_p50"]), "p99": _round(row["svc_p99"])},
        "schedule_lag_ms": {
            "p50": _round(row["lag_p50"]),
            "p99": _round(row["lag_p99"]),
            "max": _round(row["lag_max"]),
        },
    }


def planned_duration(load: dict[str, Any]) -> float | None:
    """Seconds the load (a manifest's ``scenario.load``) was planned to last."""
    if load.get("stages"):
        return float(sum(s["duration"] for s in load["stages"]))
    duration = load.get("duration")
    return None if duration is None else float(duration)


def _expected(load: dict[str, Any]) -> float:
    if load.get("stages"):
        return float(sum(
            s["duration"] * (s["rate"] + (s["rate"] if s.get("to") is None else s["to"])) / 2
            for s in load["stages"]
        ))
    return float(load.get("rate") or 0) * float(load.get("duration") or 0)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def format_summary(summary: dict[str, Any]) -> str:
    """The human summary ``streambench run`` prints at the end."""
    lat = summary["latency_ms"]
    lag = summary["schedule_lag_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    intended = summary["intended_rate"]
    ratio = summary["achieved_ratio"]
    pushes = summary.get("pushes") or {"received": 0}
    # A run that only listened offered no rate and timed no reply: its pushes say it all.
    listening = summary["sent"] == 0 and (pushes["received"] > 0 or intended is None)
    lines = [
        f"run {summary['run_id']}  ({summary['scenario']}, {summary['status']})",
        f"  sent {summary['sent']}  received {summary['received']}  errors {summary['errors']}"
        f"  timeouts {summary['timeouts']}  send failures {summary['send_failures']}"
        f"  protocol errors {summary['protocol_errors']}",
        *([] if listening else [
            f"  rate  achieved {summary['achieved_rate']:.1f}/s"
            + (f" of intended {intended:.1f}/s ({ratio:.1%})"
               if intended and ratio is not None else ""),
            f"  latency ms (from intended send)  p50 {ms(lat['p50'])}  p90 {ms(lat['p90'])}"
            f"  p95 {ms(lat['p95'])}  p99 {ms(lat['p99'])}  max {ms(lat['max'])}",
            f"  schedule lag ms  p50 {ms(lag['p50'])}  p99 {ms(lag['p99'])}"
            f"  max {ms(lag['max'])}"]),
        *(format_pushes(pushes) if "gap_ms" in pushes else []),
        f"  error rate {summary['error_rate']:.4%}",
        *(_replies_lines(summary, listening=listening) if "replies" in summary else []),
        *(format_fanout(summary["fanout"]) if "fanout" in summary else []),
        *(f"  WARNING {line}" for line in summary.get("warnings", [])),
    ]
    return "\n".join(lines)


def _replies_lines(summary: dict[str, Any], *, listening: bool) -> list[str]:
    """Replies and closes; a run that only listened and got no reply shows its closes."""
    lines = format_replies(summary["replies"], summary.get("closes", []))
    return lines[1:] if listening and not summary["replies"]["arrived"] else lines
