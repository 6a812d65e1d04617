"""A run as it happens, read from the store: what the live dashboard shows.

:class:`LiveRun` knows nothing about widgets. Each :meth:`LiveRun.poll`
reads only the part files written since the previous poll (parts are
immutable once renamed into place), so a poll costs the same in the first
minute of a soak as in its tenth hour:

* counters (sent, received, pushes, errors, timeouts, connects, disconnects) are
  cumulative over every part read (each row counted once, even when
  compaction merges parts already read: :class:`~streambench.capture.follow.Follower`);
* the per-window metrics and the anomaly rules look at the last ``span_s``
  seconds of events only (a trailing buffer), which bounds memory and time;
* an anomaly becomes an :class:`Alert` the first time its fingerprint fires,
  and again when it fires after having stopped (a new occurrence);
  :func:`grouped` folds them into one line per fingerprint with a count.

It works for a run started from this process (a
:class:`~streambench.BackgroundRun`: its progress reports give the counters
and the clock between parts, and it can be stopped) and for a run another
process is writing, found by its id in the store.

The clock (``elapsed_s``) counts from the schedule's zero (the first send),
not from the manifest's start (which includes starting the target and
opening connections), and never passes the plan.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from streambench.analyze.summary import planned_duration
from streambench.capture.follow import Follower
from streambench.capture.store import Store

COUNTERS = ("sent", "received", "pushes", "errors", "timeouts", "connects", "disconnects")
_KIND_COUNTER = {"send": "sent", "recv": "received", "push": "pushes", "error": "errors",
                 "timeout": "timeouts", "connect": "connects",
                 "disconnect": "disconnects"}  # fmt: skip


@dataclass(frozen=True)
class Alert:
    """An anomaly as it fired during the run (``anomaly`` is ``Anomaly.to_dict()``)."""

    anomaly: dict[str, Any]
    seen_at_s: float  # when it happened: seconds from the run's first send to its start

    @property
    def title(self) -> str:
        a = self.anomaly
        return f"{a['severity']}: {a['rule']} ({a['fingerprint']})"


@dataclass(frozen=True)
class AlertGroup:
    """Every alert of one fingerprint: what the dashboard shows on one line."""

    first: Alert
    count: int
    last_seen_s: float

    @property
    def title(self) -> str:
        return self.first.title

    @property
    def severity(self) -> str:
        return str(self.first.anomaly["severity"])

    @property
    def tip(self) -> str | None:
        tips = self.first.anomaly.get("suggestions") or []
        return str(tips[0]["title"] or tips[0]["fix"]) if tips else None


_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def grouped(alerts: tuple[Alert, ...]) -> list[AlertGroup]:
    """One group per fingerprint, the most severe and most recent first."""
    groups: dict[str, AlertGroup] = {}
    for alert in alerts:
        key = str(alert.anomaly["fingerprint"])
        known = groups.get(key)
        groups[key] = AlertGroup(first=known.first if known else alert,
                                 count=(known.count if known else 0) + 1,
                                 last_seen_s=alert.seen_at_s)
    return sorted(groups.values(),
                  key=lambda g: (_SEVERITY_ORDER.get(g.severity, 3), -g.last_seen_s))


@dataclass(frozen=True)
class LiveState:
    """One poll's view of the run."""

    run_id: str
    scenario: str
    status: str  # starting | running | completed | aborted | failed | unknown
    elapsed_s: float  # since the first send, at most total_s
    total_s: float | None
    counts: dict[str, int]
    windows: pl.DataFrame  # per-window metrics of the trailing span (see analyze.metrics)
    alerts: tuple[Alert, ...]
    parts: int  # part files read so far
    host: str = ""  # where the run's process runs (from its manifest)
    pid: int | None = None

    @property
    def done(self) -> bool:
        return self.status not in ("starting", "running", "unknown")

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
    _follower: Follower | None = None
    _counts: Counter[str] = field(default_factory=Counter)
    _buffer: pl.DataFrame | None = None
    _alerts: list[Alert] = field(default_factory=list)
    _last_end: dict[str, int] = field(default_factory=dict)
    _first_ns: int | None = None  # the run's first send (epoch ns)
    _last_ns: int | None = None

    def poll(self) -> LiveState:
        """Read what the run wrote since the last poll; return the new state."""
        manifest = self._manifest()
        status = self._status(manifest)  # before reading: a done run's parts are all there
        fresh = self._read_new_parts()
        if fresh is not None:
            self._absorb(fresh)
        windows = self._windows(manifest)
        total = _total(manifest)
        progress = getattr(self.handle, "latest", None)
        return LiveState(
            run_id=self.run_id,
            scenario=str((manifest.get("scenario") or {}).get("name", "")),
            status=status,
            elapsed_s=self._elapsed(progress, running=status == "running", total=total),
            total_s=total,
            counts=self._current_counts(progress),
            windows=windows,
            alerts=tuple(self._alerts),
            parts=self._reader().parts_read,
            host=str(manifest.get("host") or ""),
            pid=manifest.get("pid"),
        )

    def _current_counts(self, progress: Any) -> dict[str, int]:
        """Counters from the parts, or from the run's latest progress report when it is
        ahead (it is sent as each batch goes to the writer, before the part exists)."""
        counts = {name: self._counts[name] for name in COUNTERS}
        if progress is not None:
            for name in ("sent", "received", "pushes", "errors", "timeouts"):
                counts[name] = max(counts[name], int(getattr(progress, name, 0)))
        return counts

    def _elapsed(self, progress: Any, *, running: bool, total: float | None) -> float:
        """Seconds since the first send (the run's progress clock when there is one)."""
        if progress is not None:
            elapsed = float(progress.elapsed_s)
        elif self._first_ns is None:
            elapsed = 0.0
        elif running:
            elapsed = (time.time_ns() - self._first_ns) / 1e9
        else:
            elapsed = ((self._last_ns or self._first_ns) - self._first_ns) / 1e9
        return min(max(elapsed, 0.0), total) if total else max(elapsed, 0.0)

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
            # "starting" until the first progress report (target, connections, zero)
            return "running" if self.handle.latest is not None else "starting"
        return str(manifest.get("status") or "unknown")

    def _reader(self) -> Follower:
        if self._follower is None:
            self._follower = Follower(self.store, self.run_id)
        return self._follower

    def _read_new_parts(self) -> pl.DataFrame | None:
        fresh = self._reader().read_new()
        return None if fresh is None else fresh.with_columns(run_id=pl.lit(self.run_id))

    def _absorb(self, fresh: pl.DataFrame) -> None:
        sends = fresh.filter(pl.col("kind") == "send")["ts"].dt.epoch("ns")
        first, last = sends.min(), fresh["ts"].dt.epoch("ns").max()
        if isinstance(first, int) and isinstance(last, int):
            self._first_ns = first if self._first_ns is None else min(self._first_ns, first)
            self._last_ns = last if self._last_ns is None else max(self._last_ns, last)
        for kind, count in fresh.group_by("kind").len().iter_rows():
            if kind in _KIND_COUNTER:
                self._counts[_KIND_COUNTER[kind]] += count
        buffer = fresh if self._buffer is None else pl.concat([self._buffer, fresh],
                                                              how="diagonal_relaxed")
        self._buffer = buffer.filter(
            pl.col("ts") >= pl.col("ts").max() - timedelta(seconds=self.span_s))

    def _windows(self, manifest: dict[str, Any]) -> pl.DataFrame:
        from streambench.analyze import detect_anomalies, metrics

        if self._buffer is None or self._buffer.height == 0:
            return pl.DataFrame()
        measured = metrics(self._buffer.lazy(), window=self.window_s, manifest=manifest,
                           payloads=False)  # fmt: skip
        if self.detect:
            found = detect_anomalies(measured, rules=self._rules(), manifest=manifest)
            self._note(found)
        windows: pl.DataFrame = measured.windows
        return windows

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
                origin = self._first_ns if self._first_ns is not None else anomaly.start
                seen = max(anomaly.start - origin, 0) / 1e9
                self._alerts.append(Alert(anomaly=anomaly.to_dict(), seen_at_s=seen))
            self._last_end[anomaly.fingerprint] = max(anomaly.end, last_end or anomaly.end)


def _total(manifest: dict[str, Any]) -> float | None:
    return planned_duration((manifest.get("scenario") or {}).get("load") or {})

