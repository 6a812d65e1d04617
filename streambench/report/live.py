"""A run as it happens, read from the store: what the live dashboard shows.

:class:`LiveRun` knows nothing about widgets. Each :meth:`LiveRun.poll`
reads only the part files written since the previous poll (parts are
immutable once renamed into place), so a poll costs the same in the first
minute of a soak as in its tenth hour:

* counters (sent, received, errors, timeouts, connects, disconnects) are
  cumulative over every part read;
* the per-window metrics and the anomaly rules look at the last ``span_s``
  seconds of events only (a trailing buffer), which bounds memory and time;
* an anomaly becomes an :class:`Alert` the first time its fingerprint fires,
  and again when it fires after having stopped (a new occurrence).

It works for a run in this process (a :class:`~streambench.BackgroundRun`,
which can also be stopped) and for a run another process is writing, found
by its id in the store.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from streambench.analyze.summary import planned_duration
from streambench.capture.manifest import parse_time
from streambench.capture.store import Store

COUNTERS = ("sent", "received", "errors", "timeouts", "connects", "disconnects")
_KIND_COUNTER = {"send": "sent", "recv": "received", "error": "errors", "timeout": "timeouts",
                 "connect": "connects", "disconnect": "disconnects"}  # fmt: skip


@dataclass(frozen=True)
class Alert:
    """An anomaly as it fired during the run (``anomaly`` is ``Anomaly.to_dict()``)."""

    anomaly: dict[str, Any]
    seen_at_s: float  # seconds into the run when the dashboard first saw it

    @property
    def title(self) -> str:
        a = self.anomaly
        return f"{a['severity']}: {a['rule']} ({a['fingerprint']})"


@dataclass(frozen=True)
class LiveState:
    """One poll's view of the run."""

    run_id: str
    scenario: str
    status: str  # running | completed | aborted | failed | unknown
    elapsed_s: float
    total_s: float | None
    counts: dict[str, int]
    windows: pl.DataFrame  # per-window metrics of the trailing span (see analyze.metrics)
    alerts: tuple[Alert, ...]
    parts: int  # part files read so far

    @property
    def done(self) -> bool:
        return self.status not in ("running", "unknown")

    @property
    def error_rate(self) -> float:
        failed = self.counts.get("errors", 0) + self.counts.get("timeouts", 0)
        return failed / self.counts["sent"] if self.counts.get("sent") else 0.0


@dataclass
class LiveRun:
    """Incremental reader of one run; call :meth:`poll` about once a second.

    ``handle``: the run's :class:`~streambench.BackgroundRun` when it runs in
    this process (its status is then authoritative and :meth:`stop` works).
    ``span_s``: how much recent history the windows and anomaly rules see.
    ``detect``: run the anomaly rules on each poll (``rules`` default to
    ``rules/anomalies.yaml``).
    """

    run_id: str
    store: Store
    handle: Any | None = None
    span_s: float = 60.0
    window_s: float = 1.0
    detect: bool = True
    rules: tuple[Any, ...] | None = None
    _seen: set[str] = field(default_factory=set)
    _counts: Counter[str] = field(default_factory=Counter)
    _buffer: pl.DataFrame | None = None
    _alerts: list[Alert] = field(default_factory=list)
    _last_end: dict[str, int] = field(default_factory=dict)
    _started_mono: float = field(default_factory=time.monotonic)

    def poll(self) -> LiveState:
        """Read what the run wrote since the last poll; return the new state."""
        manifest = self._manifest()
        fresh = self._read_new_parts()
        if fresh is not None:
            self._absorb(fresh)
        windows = self._windows(manifest)
        return LiveState(
            run_id=self.run_id,
            scenario=str((manifest.get("scenario") or {}).get("name", "")),
            status=self._status(manifest),
            elapsed_s=_elapsed(manifest, self._started_mono),
            total_s=_total(manifest),
            counts={name: self._counts[name] for name in COUNTERS},
            windows=windows,
            alerts=tuple(self._alerts),
            parts=len(self._seen),
        )

    def stop(self, reason: str = "stopped from the dashboard") -> bool:
        """Stop the run if it runs in this process; False if it cannot be stopped here."""
        if self.handle is None:
            return False
        self.handle.stop(reason)
        return True

    # -- reading -------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        try:
            return self.store.manifest(self.run_id)
        except Exception:  # not written yet, or mid-rename: try next poll
            return {}

    def _status(self, manifest: dict[str, Any]) -> str:
        if self.handle is not None and not self.handle.done():
            return "running"
        return str(manifest.get("status") or "unknown")

    def _read_new_parts(self) -> pl.DataFrame | None:
        paths = [p for p in self.store.parts("events", self.run_id) if p not in self._seen]
        frames = []
        for path in paths:
            with self.store.fs.open(path, "rb") as f:
                frames.append(pl.read_parquet(f))
            self._seen.add(path)
        if not frames:
            return None
        return pl.concat(frames, how="diagonal_relaxed").with_columns(run_id=pl.lit(self.run_id))

    def _absorb(self, fresh: pl.DataFrame) -> None:
        for kind, count in fresh.group_by("kind").len().iter_rows():
            if kind in _KIND_COUNTER:
                self._counts[_KIND_COUNTER[kind]] += count
        buffer = fresh if self._buffer is None else pl.concat([self._buffer, fresh],
                                                              how="diagonal_relaxed")
        newest = buffer["ts"].max()
        self._buffer = buffer.filter(pl.col("ts") >= newest - timedelta(seconds=self.span_s))

    def _windows(self, manifest: dict[str, Any]) -> pl.DataFrame:
        from streambench.analyze import detect_anomalies, metrics

        if self._buffer is None or self._buffer.height == 0:
            return pl.DataFrame()
        measured = metrics(self._buffer.lazy(), window=self.window_s, manifest=manifest,
                           payloads=False)  # fmt: skip
        if self.detect:
            found = detect_anomalies(measured, rules=self._rules(), manifest=manifest)
            self._note(found)
        return measured.windows

    def _rules(self) -> tuple[Any, ...]:
        if self.rules is None:
            from streambench.analyze import load_rules

            self.rules = tuple(load_rules())
        return self.rules

    def _note(self, anomalies: list[Any]) -> None:
        """Turn anomalies into alerts: new fingerprints, or old ones firing again."""
        for anomaly in anomalies:
            last_end = self._last_end.get(anomaly.fingerprint)
            if last_end is None or anomaly.start > last_end:
                seen = time.monotonic() - self._started_mono
                self._alerts.append(Alert(anomaly=anomaly.to_dict(), seen_at_s=seen))
            self._last_end[anomaly.fingerprint] = max(anomaly.end, last_end or anomaly.end)


def _elapsed(manifest: dict[str, Any], fallback_start: float) -> float:
    started = parse_time(manifest.get("started"))
    if started is None:
        return time.monotonic() - fallback_start
    ended = parse_time(manifest.get("ended")) or datetime.now(UTC)
    return max((ended - started).total_seconds(), 0.0)


def _total(manifest: dict[str, Any]) -> float | None:
    return planned_duration((manifest.get("scenario") or {}).get("load") or {})

