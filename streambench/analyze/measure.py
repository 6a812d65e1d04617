"""Run metrics: one run-level summary plus a per-window table, exact from the events.

``metrics(events)`` reads the store's LazyFrame once (see
:mod:`streambench.analyze.frame`); the returned :class:`Metrics` keeps the
compact frame so SLO checks, anomaly rules and comparisons reuse it instead of
reading the store again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from streambench.analyze.frame import Prepared, prepare
from streambench.analyze.shapes import NON_JSON
from streambench.analyze.source import scenario_name
from streambench.analyze.types import iso
from streambench.analyze.windows import (
    QUANTILES,
    latency_summary,
    send_windows,
    shape_windows,
    window_stats,
)
from streambench.stats import percentile

_RUN_COUNTS = ("sent", "received", "errors", "timeouts", "lost", "duplicates", "out_of_order",
               "unsent", "connects", "reconnects", "disconnects")  # fmt: skip


@dataclass
class Metrics:
    """What a run measured.

    ``run``: the run-level numbers (see :func:`metrics`); ``windows``: one row
    per window (see :mod:`streambench.analyze.windows`); ``schemas``: one row
    per payload schema fingerprint with ``fields``, ``count``, ``first_seen``,
    ``last_seen``; ``prepared``: the compact event frame, for reuse.
    """

    run: dict[str, Any]
    windows: pl.DataFrame
    schemas: pl.DataFrame
    window_s: float
    prepared: Prepared
    health: pl.DataFrame | None = None
    _cache: dict[tuple[str, float], pl.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str | None:
        return self.run.get("run_id")

    @property
    def scenario(self) -> str | None:
        return self.run.get("scenario")

    def origin(self, length_ns: int) -> int:
        """Start (epoch ns) of window 0 for windows of ``length_ns``: clock-aligned."""
        return self.prepared.origin(length_ns)

    def windows_for(self, window_s: float) -> pl.DataFrame:
        """The per-window table for another window length (computed once, cached)."""
        if window_s == self.window_s:
            return self.windows
        key = ("windows", window_s)
        if key not in self._cache:
            self._cache[key] = window_stats(self.prepared, window_s=window_s)
        return self._cache[key]

    def send_windows_for(self, window_s: float) -> pl.DataFrame:
        """Sends per window of ``window_s`` (``w``, ``start``, ``active``, ``sent``,
        ``throughput_sent``): the cheap table for send-rate rules (cached)."""
        if window_s == self.window_s:
            return self.windows
        key = ("send_windows", window_s)
        if key not in self._cache:
            self._cache[key] = send_windows(self.prepared, window_s=window_s)
        return self._cache[key]

    def shapes_for(self, window_s: float) -> pl.DataFrame:
        """Replies per (window, schema fingerprint) for ``window_s`` (cached)."""
        key = ("shapes", window_s)
        if key not in self._cache:
            self._cache[key] = shape_windows(self.prepared, window_s=window_s)
        return self._cache[key]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"run": {...}, "windows": [...], "schemas": [...]}``."""
        windows = self.windows.drop("w").with_columns(pl.col("start").map_elements(
            lambda t: t.isoformat().replace("+00:00", "Z"), return_dtype=pl.String
        ))  # fmt: skip
        schemas = self.schemas.with_columns(
            pl.col("first_seen", "last_seen").map_elements(iso, return_dtype=pl.String)
        )
        return {"run": self.run, "windows": windows.to_dicts(), "schemas": schemas.to_dicts()}


def _unclosed_as_non_json(events: pl.LazyFrame) -> pl.LazyFrame:
    """Reply payloads that open a JSON object but never close it read as ``<non-json>``.

    A truncated object (``{"cid":"0-3","seq":3``, what a ``malformed`` fault
    echoes back) still has readable keys, so its field set would look like the
    normal one and schema drift could not see it. Fused into the one collect of
    :func:`prepare`; cheap (a suffix test per reply).
    """
    if "payload" not in events.collect_schema().names():
        return events
    payload = pl.col("payload")
    unclosed = (
        (pl.col("kind").cast(pl.String) == "recv")
        & payload.str.starts_with("{")
        & ~payload.str.strip_chars_end().str.ends_with("}")
    )
    return events.with_columns(payload=pl.when(unclosed).then(pl.lit(NON_JSON)).otherwise(payload))


def _schemas(prep: Prepared) -> pl.DataFrame:
    plain = prep.frame.filter("plain_shape").select("at", shape=pl.lit(prep.plain_shape, pl.String))
    shaped = pl.concat([plain, prep.odd_shapes])
    return (
        shaped.group_by(pl.col("shape").alias("fingerprint"))
        .agg(count=pl.len(), first_seen=pl.col("at").min(), last_seen=pl.col("at").max())
        .with_columns(fields=pl.col("fingerprint").str.split(","))
        .sort("first_seen")
    )


def _run_summary(prep: Prepared, windows: pl.DataFrame) -> dict[str, Any]:
    frame = prep.frame
    counts = {name: int(windows[name].sum()) for name in _RUN_COUNTS} if windows.height else {}
    sends = prep.rows("send")
    latency = prep.rows("recv")["latency_ms"].drop_nulls().sort()
    names = [*QUANTILES, "max_ms", "mean_ms"]
    quantiles = (
        pl.select(latency_summary(pl.lit(latency))).row(0, named=True)
        if latency.len()
        else dict.fromkeys(names)
    )
    replies = prep.rows("recv")["ts"]
    last = int(replies.max()) if replies.len() else prep.t_end  # type: ignore[arg-type]
    span_s = (last - int(sends["ts"].min())) / 1e9 if sends.height else 0.0
    send_span_s = (int(sends["ts"].max()) - int(sends["ts"].min())) / 1e9 if sends.height else 0.0
    sent = max(counts.get("sent", 0), 1)
    return {
        "start": iso(int(sends["ts"].min())) if sends.height else None,
        "end": iso(prep.t_end) if frame.height else None,
        "duration_s": round(span_s, 6),
        **counts,
        "error_rate": counts.get("errors", 0) / sent,
        "timeout_rate": counts.get("timeouts", 0) / sent,
        "loss_rate": counts.get("lost", 0) / sent,
        "throughput_sent": counts.get("sent", 0) / send_span_s if send_span_s else 0.0,
        "throughput_recv": counts.get("received", 0) / span_s if span_s else 0.0,
        **quantiles,
        "lag_p99_ms": percentile(sends["lag_ms"].drop_nulls().to_numpy(), 0.99),
        "lag_max_ms": sends["lag_ms"].max() if sends.height else None,
    }


def metrics(
    events: pl.LazyFrame,
    *,
    window: float = 1.0,
    manifest: dict[str, Any] | None = None,
    payloads: bool = True,
    health: pl.LazyFrame | pl.DataFrame | None = None,
) -> Metrics:
    """Compute a run's metrics from its events (a LazyFrame with EVENT_SCHEMA columns).

    ``window`` is the window length in seconds. ``manifest`` (the run's
    manifest dict, optional) supplies the run id, the scenario name and the
    reply timeout (``scenario.load.timeout``, default 5 s) used to tell a lost
    reply from one the capture ended before. ``payloads=False`` skips schema
    fingerprints. ``health``: the run's process health rows
    (``Store.health(run_id)``), if any: generator attribution and soak health
    rules read them.

    Run-level keys: ``run_id``, ``scenario``, ``window_s``, ``start``, ``end``,
    ``duration_s``, counts (``sent``, ``received``, ``errors``, ``timeouts``,
    ``lost``, ``duplicates``, ``out_of_order``, ``connects``, ``reconnects``,
    ``disconnects``), rates (``error_rate``, ``timeout_rate``, ``loss_rate``
    per message sent), ``throughput_sent``/``throughput_recv`` (messages/s),
    exact latency ``p50_ms`` ``p90_ms`` ``p95_ms`` ``p99_ms`` ``p999_ms``
    ``max_ms`` ``mean_ms`` (from intended send), schedule lag ``lag_p99_ms``
    ``lag_max_ms`` (actual minus intended send) and ``schemas`` (how many
    payload field sets were seen).
    """
    manifest = manifest or {}
    scenario = manifest.get("scenario") if isinstance(manifest.get("scenario"), dict) else {}
    timeout_s = float(((scenario or {}).get("load") or {}).get("timeout") or 5.0)
    if payloads:
        events = _unclosed_as_non_json(events)
    prep = prepare(events, timeout_s=timeout_s, payloads=payloads)
    windows = window_stats(prep, window_s=window)
    schemas = _schemas(prep)
    run = {
        "run_id": manifest.get("run_id"),
        "scenario": scenario_name(manifest),
        "window_s": window,
        **_run_summary(prep, windows),
        "schemas": schemas.height,
    }
    if isinstance(health, pl.LazyFrame):
        health = health.collect()
    return Metrics(run=run, windows=windows, schemas=schemas, window_s=window, prepared=prep,
                   health=health if health is not None and health.height else None)
