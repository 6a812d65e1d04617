"""Run metrics: one run-level summary plus a per-window table, exact from the events.

``metrics(events)`` reads the store's LazyFrame in bounded memory, however
large the run (see docs/analysis.md#out-of-core-analysis): one streaming pass
for the run's facts and the value counts behind its percentiles, then one pass
over time slices (:mod:`streambench.analyze.passes`). The returned
:class:`Metrics` keeps the small tables rules need (window statistics, payload
field sets, error texts, reply silences) so SLO checks, anomaly rules and
comparisons reuse them; a table for another window length is one more pass,
computed when first asked for and cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from streambench.analyze.facts import SLICE_ROWS, RunFacts, run_facts
from streambench.analyze.frame import reply_payload
from streambench.analyze.passes import (
    ERRORS,
    SHAPES,
    SILENCES,
    VALUES,
    WINDOWS,
    PassOptions,
    echo_duplicates,
    slice_pass,
)
from streambench.analyze.quantiles import Distribution, distribution
from streambench.analyze.run_summary import run_summary
from streambench.analyze.shapes import dominant_skeleton, fields_of
from streambench.analyze.silences import DEFAULT_FLOORS, Floors, with_pending
from streambench.analyze.source import scenario_name
from streambench.analyze.types import iso
from streambench.analyze.windows import LATENCY_SUM, send_windows


@dataclass
class Metrics:
    """What a run measured.

    ``run``: the run-level numbers (see :func:`metrics`); ``windows``: one row
    per window (see :mod:`streambench.analyze.windows`); ``schemas``: one row
    per payload schema fingerprint with ``fields``, ``count``, ``first_seen``,
    ``last_seen``. The rest is for the analysis that follows: the source
    ``events``, the run's ``facts``, the ``latency`` distribution, and the
    process ``health`` rows (None when the run has none).
    """

    run: dict[str, Any]
    windows: pl.DataFrame
    schemas: pl.DataFrame
    window_s: float
    events: pl.LazyFrame
    facts: RunFacts
    latency: Distribution
    options: PassOptions
    health: pl.DataFrame | None = None
    _cache: dict[tuple[str, object], pl.DataFrame] = field(default_factory=dict, repr=False)
    _samples: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str | None:
        return self.run.get("run_id")

    @property
    def scenario(self) -> str | None:
        return self.run.get("scenario")

    @property
    def t0(self) -> int:
        """The run's first event (or due time), floored to a whole second (epoch ns)."""
        return self.facts.t0

    def origin(self, length_ns: int) -> int:
        """Start (epoch ns) of window 0 for windows of ``length_ns``: clock-aligned."""
        return self.facts.origin(length_ns)

    def _tables(self, window_s: float, name: str) -> pl.DataFrame:
        key = (name, window_s)
        if key not in self._cache:
            result = slice_pass(self.events, self.facts, self.options, window_s=window_s,
                                want=frozenset({name}), plain=self._plain())  # fmt: skip
            table = getattr(result, name)
            assert isinstance(table, pl.DataFrame), name  # slice_pass builds what is wanted
            self._cache[key] = table
        return self._cache[key]

    def _plain(self) -> str | None:
        skeleton = self.options.skeleton
        return fields_of(skeleton) if skeleton else None

    def windows_for(self, window_s: float) -> pl.DataFrame:
        """The per-window table for another window length (one pass, then cached)."""
        if window_s == self.window_s:
            return self.windows
        return self._tables(window_s, WINDOWS).drop(LATENCY_SUM)

    def send_windows_for(self, window_s: float) -> pl.DataFrame:
        """Sends per window of ``window_s`` (``w``, ``start``, ``active``, ``sent``,
        ``throughput_sent``): the cheap table for send-rate rules (cached)."""
        if window_s == self.window_s:
            return self.windows
        key = ("send_windows", window_s)
        if key not in self._cache:
            self._cache[key] = send_windows(self.events, self.facts, window_s=window_s)
        return self._cache[key]

    def shapes_for(self, window_s: float) -> pl.DataFrame:
        """Replies per (window, field set) for ``window_s``: ``w``, ``shape``, ``count``
        (empty when the metrics were computed with ``payloads=False``)."""
        if not self.options.payloads:
            return pl.DataFrame(schema={"w": pl.Int64, "shape": pl.String, "count": pl.UInt32})
        return self._tables(window_s, SHAPES)

    def errors_for(self, window_s: float) -> pl.DataFrame:
        """Error and timeout rows per (window, kind, error text): ``w``, ``kind``,
        ``error``, ``count``."""
        return self._tables(window_s, ERRORS)

    def silences(self, floors: Floors = DEFAULT_FLOORS) -> pl.DataFrame:
        """Reply silences at least as long as ``floors`` allow: ``conn`` (null:
        run-wide), ``start``, ``end``, ``pending`` (see :mod:`.silences`)."""
        key = (SILENCES, floors)
        if key not in self._cache:
            found = slice_pass(self.events, self.facts, self.options, window_s=self.window_s,
                               want=frozenset({SILENCES}), floors=floors).silences
            assert found is not None  # slice_pass builds what is wanted
            typical = (self.run.get("p50_ms") or 0.0) * 1e6
            self._cache[key] = with_pending(self.events, found, typical_ns=typical,
                                            facts=self.facts)
        return self._cache[key]

    def latency_sample(self, size: int) -> np.ndarray:
        """Up to ``size`` reply latencies, the same ones however often asked (cached)."""
        if size not in self._samples:
            self._samples[size] = _sample(self.events, self.facts.replies, size)
        return self._samples[size]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"run": {...}, "windows": [...], "schemas": [...]}``."""
        windows = self.windows.drop("w").with_columns(pl.col("start").map_elements(
            lambda t: t.isoformat().replace("+00:00", "Z"), return_dtype=pl.String
        ))  # fmt: skip
        schemas = self.schemas.with_columns(
            pl.col("first_seen", "last_seen").map_elements(iso, return_dtype=pl.String)
        )
        return {"run": self.run, "windows": windows.to_dicts(), "schemas": schemas.to_dicts()}


def _sample(events: pl.LazyFrame, replies: int, size: int) -> np.ndarray:
    """A deterministic sample of reply latencies: the rows whose hash of
    (conn, seq, ts) is smallest, so slicing or file order cannot change it."""
    keep = max(1, replies // max(size * 4, 1))
    hashed = (events.filter(pl.col("kind") == "recv", pl.col("latency_ms").is_not_null())
              .select("latency_ms", h=pl.struct("conn", "seq", "ts").hash(seed=7))
              .filter(pl.col("h") % keep == 0).collect(engine="streaming"))  # fmt: skip
    return hashed.sort("h", "latency_ms").head(size)["latency_ms"].to_numpy()


def _schemas(rows: pl.DataFrame) -> pl.DataFrame:
    return (rows.rename({"shape": "fingerprint"})
            .with_columns(fields=pl.col("fingerprint").str.split(","))
            .select("fingerprint", "count", "first_seen", "last_seen", "fields")
            .sort("first_seen", "fingerprint"))  # fmt: skip


def metrics(
    events: pl.LazyFrame,
    *,
    window: float = 1.0,
    manifest: dict[str, Any] | None = None,
    payloads: bool = True,
    health: pl.LazyFrame | pl.DataFrame | None = None,
    slice_rows: int | None = SLICE_ROWS,
) -> Metrics:
    """Compute a run's metrics from its events (a LazyFrame with EVENT_SCHEMA columns).

    ``window`` is the window length in seconds. ``manifest`` (the run's
    manifest dict, optional) supplies the run id, the scenario name and the
    reply timeout (``scenario.load.timeout``, default 5 s) used to tell a lost
    reply from one the capture ended before. ``payloads=False`` skips schema
    fingerprints. ``health``: the run's process health rows
    (``Store.health(run_id)``), if any: generator attribution and soak health
    rules read them. ``slice_rows``: about how many events to hold in memory at
    once (None: the whole run); the results do not depend on it.

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
    facts = run_facts(events)
    payloads = payloads and "payload" in events.collect_schema().names()
    options = PassOptions(timeout_ns=int(timeout_s * 1e9), slice_rows=slice_rows,
                          skeleton=dominant_skeleton(events.with_columns(
                              payload=reply_payload())) if payloads else None,
                          payloads=payloads, echoes=echo_duplicates(events))  # fmt: skip
    plain = fields_of(options.skeleton) if options.skeleton else None
    want = frozenset({WINDOWS, ERRORS, SILENCES, VALUES} | ({SHAPES} if payloads else set()))
    found = slice_pass(events, facts, options, window_s=window, want=want, plain=plain)
    kind = pl.col("kind")
    latency = distribution([events.filter(kind == "recv").select("latency_ms")],
                           counts=found.latency_counts)
    lag = distribution([events.filter(kind == "send").select(
        (pl.col("sent_ns") - pl.col("intended_ns")) / 1e6)], counts=found.lag_counts)
    schemas = _schemas(found.schemas if found.schemas is not None else pl.DataFrame(
        schema={"shape": pl.String, "count": pl.UInt32, "first_seen": pl.Int64,
                "last_seen": pl.Int64}))  # fmt: skip
    assert found.windows is not None
    run = {
        "run_id": manifest.get("run_id"),
        "scenario": scenario_name(manifest),
        "window_s": window,
        **run_summary(found.windows, facts, latency=latency, lag=lag),
        "schemas": schemas.height,
    }
    if isinstance(health, pl.LazyFrame):
        health = health.collect()
    measured = Metrics(run=run, windows=found.windows.drop(LATENCY_SUM), schemas=schemas,
                       window_s=window, events=events, facts=facts, latency=latency,
                       options=options, health=health if health is not None and health.height
                       else None)  # fmt: skip
    typical = (run.get("p50_ms") or 0.0) * 1e6
    silences = found.silences if found.silences is not None else pl.DataFrame()
    measured._cache[(SILENCES, DEFAULT_FLOORS)] = with_pending(events, silences,
                                                               typical_ns=typical, facts=facts)
    for name, table in ((SHAPES, found.shapes), (ERRORS, found.errors)):
        if table is not None:
            measured._cache[(name, window)] = table
    return measured
