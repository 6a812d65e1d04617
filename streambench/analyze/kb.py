"""The knowledge base: what went wrong before, what fixed it, what did not.

Three append-only Parquet tables under ``<store>/kb/`` (each write adds one
part file, written under a temporary name and renamed, never rewritten):

``occurrences``  fingerprint, rule, kind, severity, run_id, scenario, start, end,
                 evidence (JSON), recorded_at: one row per anomaly per run
``resolutions``  fingerprint, at, fix, note: "this problem was fixed by that"
``feedback``     fingerprint, at, fix, worked, note: "this suggestion (did not) work"

Derived per fingerprint (:meth:`KnowledgeBase.summary`): recurrence (how many
occurrences, in how many runs), first and last seen, resolutions and the mean
time to resolve: for each resolution, from the first occurrence after the
previous resolution to the resolution itself.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from streambench.analyze.types import Anomaly, parse_time_ns
from streambench.capture.store import Store

_TS = pl.Datetime("ns", "UTC")
SCHEMAS: dict[str, dict[str, Any]] = {
    "occurrences": {"fingerprint": pl.String, "rule": pl.String, "kind": pl.String,
                    "severity": pl.String, "run_id": pl.String, "scenario": pl.String,
                    "start": _TS, "end": _TS, "evidence": pl.String, "recorded_at": _TS},
    "resolutions": {"fingerprint": pl.String, "at": _TS, "fix": pl.String, "note": pl.String},
    "feedback": {"fingerprint": pl.String, "at": _TS, "fix": pl.String, "worked": pl.Boolean,
                 "note": pl.String},
}  # fmt: skip


def _now_ns() -> int:
    return parse_time_ns(datetime.now(UTC))


class KnowledgeBase:
    """The knowledge base of the store at ``store_root`` (a path or fsspec URL)."""

    def __init__(self, store_root: str | os.PathLike[str]) -> None:
        self.store = Store(store_root)
        self._cache: dict[str, pl.DataFrame] = {}

    # -- raw tables ------------------------------------------------------------
    def table(self, name: str) -> pl.DataFrame:
        """All rows of one table (``occurrences``, ``resolutions`` or ``feedback``)."""
        if name not in self._cache:
            parts = [self.store.join("kb", name, n) for n, is_dir in
                     self.store.list_dir("kb", name) if not is_dir and n.endswith(".parquet")
                     and not n.startswith(".")]
            if parts:
                frames = [pl.read_parquet(self.store.fs.open(p, "rb").read()) for p in parts]
                self._cache[name] = pl.concat(frames, how="vertical_relaxed")
            else:
                self._cache[name] = pl.DataFrame(schema=SCHEMAS[name])
        return self._cache[name]

    def _append(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        frame = pl.DataFrame(rows, schema=SCHEMAS[name])
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        folder = self.store.join("kb", name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        with self.store.errors(f"write the knowledge base ({name})"):
            self.store.files.makedirs(folder)
            self.store.files.write_atomic(
                f"{folder}/part-{stamp}-{uuid.uuid4().hex[:8]}.parquet", buffer.getvalue())
        self._cache.pop(name, None)

    # -- writing ---------------------------------------------------------------
    def record(self, anomalies: Sequence[Anomaly], *, scenario: str | None = None) -> int:
        """Append the anomalies of a run as occurrences; ones already recorded
        (same run, fingerprint and start) are skipped. Returns how many were added."""
        known = self.table("occurrences").select(
            "run_id", "fingerprint", pl.col("start").dt.epoch("ns")
        )
        seen = set(known.iter_rows())
        now = _now_ns()
        rows = [
            {"fingerprint": a.fingerprint, "rule": a.rule, "kind": a.kind, "severity": a.severity,
             "run_id": a.run_id, "scenario": scenario, "start": a.start, "end": a.end,
             "evidence": json.dumps(a.evidence, default=str), "recorded_at": now}
            for a in anomalies
            if (a.run_id, a.fingerprint, a.start) not in seen
        ]  # fmt: skip
        self._append("occurrences", rows)
        return len(rows)

    def resolve(self, fingerprint: str, *, fix: str, note: str = "", at: Any = None) -> None:
        """Record that ``fix`` resolved the problem ``fingerprint`` (at ``at``, default now)."""
        when = _now_ns() if at is None else parse_time_ns(at)
        self._append("resolutions", [{"fingerprint": fingerprint, "at": when, "fix": fix,
                                      "note": note}])  # fmt: skip

    def add_feedback(
        self, fingerprint: str, *, fix: str, worked: bool, note: str = "", at: Any = None
    ) -> None:
        """Record whether suggestion ``fix`` worked for ``fingerprint``."""
        when = _now_ns() if at is None else parse_time_ns(at)
        self._append("feedback", [{"fingerprint": fingerprint, "at": when, "fix": fix,
                                   "worked": worked, "note": note}])  # fmt: skip

    # -- reading ---------------------------------------------------------------
    def fix_record(self, fingerprint: str, fix: str) -> tuple[int, int]:
        """(worked, did not work) for ``fix`` on ``fingerprint``; a resolution counts as worked."""
        feedback = self.table("feedback").filter(fingerprint=fingerprint, fix=fix)
        resolved = self.table("resolutions").filter(fingerprint=fingerprint, fix=fix).height
        worked = int(feedback["worked"].sum())
        return worked + resolved, feedback.height - worked

    def summary(self) -> pl.DataFrame:
        """One row per fingerprint: rule, kind, occurrences, runs, first/last seen,
        resolutions, mttr_s (None until resolved), last_fix; most recent first."""
        occurrences = self.table("occurrences")
        counts = occurrences.group_by("fingerprint").agg(
            rule=pl.col("rule").last(), kind=pl.col("kind").last(),
            occurrences=pl.len(), runs=pl.col("run_id").n_unique(),
            first_seen=pl.col("start").min(), last_seen=pl.col("start").max(),
        )  # fmt: skip
        resolutions = self.table("resolutions").sort("at")
        fixes = resolutions.group_by("fingerprint").agg(
            resolutions=pl.len(), last_fix=pl.col("fix").last()
        )
        mttr = [{"fingerprint": fp, "mttr_s": self._mttr(fp)} for fp in counts["fingerprint"]]
        mttr_frame = pl.DataFrame(mttr, schema={"fingerprint": pl.String, "mttr_s": pl.Float64})
        return (
            counts.join(fixes, on="fingerprint", how="left")
            .join(mttr_frame, on="fingerprint", how="left")
            .with_columns(pl.col("resolutions").fill_null(0))
            .sort("last_seen", descending=True)
        )

    def _mttr(self, fingerprint: str) -> float | None:
        column = self.table("occurrences").filter(fingerprint=fingerprint)["start"]
        starts = sorted(column.dt.epoch("ns").to_list())
        resolved_at = self.table("resolutions").filter(fingerprint=fingerprint)["at"]
        durations, previous = [], None
        for at in sorted(resolved_at.dt.epoch("ns").to_list()):
            # a fix recorded at or before an occurrence's start did not resolve it
            opened = [s for s in starts if (previous is None or s > previous) and s < at]
            if opened:
                durations.append((at - opened[0]) / 1e9)
            previous = at
        return sum(durations) / len(durations) if durations else None

    def show(self, fingerprint: str) -> dict[str, Any]:
        """Everything known about one fingerprint (summary, occurrences, resolutions, feedback)."""
        summary = self.summary().filter(fingerprint=fingerprint)
        return {
            "summary": summary.to_dicts()[0] if summary.height else None,
            "occurrences": self.table("occurrences").filter(fingerprint=fingerprint).to_dicts(),
            "resolutions": self.table("resolutions").filter(fingerprint=fingerprint).to_dicts(),
            "feedback": self.table("feedback").filter(fingerprint=fingerprint).to_dicts(),
        }
