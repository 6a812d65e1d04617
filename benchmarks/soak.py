"""soak: a long run at a steady rate on the built-in target, checked for leaks and files.

    python benchmarks/soak.py [--minutes 60] [--rate 2000] [--connections 100] [--json]

Runs ``--minutes`` at ``--rate`` messages/s against ``url: embedded`` (the
run compacts its parts as it goes, ``capture.compact_every``), then reads the
run back from the store and prints:

* memory growth of the client and of the target: the median RSS of the
  *late* window (the run's last minute) against the *early* window (minute 10
  of a 60-minute run: the minute ending at a sixth of the run, once start-up,
  pools and caches have settled), from the run's own health rows
  (one sample a second per process);
* the same for the run's other processes (the compaction process), sampled
  here every 5 s since they write no health rows (reported, not a criterion);
* the files the run left in the store (events, faults, health parts);
* the accounting: every message sent has exactly one outcome (a reply, a
  timeout or an error row) and the store holds as many send rows as the
  summary counted.

Criteria (exit status 1 if one fails): growth under ``--max-growth`` percent
(default 5) in both, at most ``--max-files`` files (default 300), nothing
unaccounted. Windows are a minute long, or a sixth of the run (at least a
second) when it is shorter than six minutes (the test suite runs a few
seconds of it).
Everything is on 127.0.0.1; the target is ended by the run by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import polars as pl  # noqa: E402
import psutil  # noqa: E402

from streambench.api import execute  # noqa: E402
from streambench.capture.store import Store  # noqa: E402
from streambench.scenario.model import Scenario  # noqa: E402

MB = 1 << 20
RESOLVED = ("recv", "timeout", "error")  # the outcomes of a message sent


def scenario(args: argparse.Namespace) -> Scenario:
    return Scenario.model_validate({
        "name": "soak",
        "target": {"protocol": "websocket", "url": "embedded"},
        "load": {"connections": args.connections, "rate": args.rate,
                 "duration": args.minutes * 60.0, "heartbeat": 10.0},
        "message": {"body": {"text": "{{sentence}}"}},
        "capture": {"redaction": {"allow": ["text"]}},
    })


def windows(duration_s: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The early and late windows, in seconds from the first health sample: a minute
    each (at least a second, at most a sixth of a short run); the early one ends at a
    sixth of the run (minute 10 of 60), the late one is the run's last."""
    width = max(1.0, min(60.0, duration_s / 6))
    early_end = max(duration_s / 6, 2 * width)
    return (early_end - width, early_end), (duration_s - width, duration_s)


def memory_growth(health: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per source (client, target): median RSS (summed over its processes) early and late."""
    start = health["ts"].min()
    per_second = (health
                  .with_columns(((pl.col("ts") - start).dt.total_milliseconds() / 1000)
                                .round(0).alias("t"))
                  .group_by("source", "t").agg(pl.col("rss_bytes").sum()))
    (early_from, early_to), (late_from, late_to) = windows(float(per_second["t"].max()))  # type: ignore[arg-type]
    growth: dict[str, dict[str, float]] = {}
    for source in ("client", "target"):
        rows = per_second.filter(pl.col("source") == source)
        early = rows.filter(pl.col("t").is_between(early_from, early_to))["rss_bytes"].median()
        late = rows.filter(pl.col("t").is_between(late_from, late_to))["rss_bytes"].median()
        if early is None or late is None:
            continue
        early_mb, late_mb = float(early) / MB, float(late) / MB  # type: ignore[arg-type]
        growth[source] = {"early_mb": early_mb, "late_mb": late_mb,
                          "growth_pct": 100.0 * (late_mb / early_mb - 1.0)}
    return growth


class Helpers(threading.Thread):
    """RSS of the run's other processes (compaction, workers; not the target), summed,
    sampled every ``every`` seconds: they write no health rows of their own."""

    def __init__(self, every: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.every = every
        self.done = threading.Event()
        self.samples: list[tuple[float, int]] = []  # (seconds from start, bytes)

    def run(self) -> None:
        start, me = time.monotonic(), psutil.Process()
        while not self.done.wait(self.every):
            total = 0
            for child in me.children(recursive=True):
                try:
                    line = child.cmdline()
                    if "serve" not in line and not any("resource_tracker" in a for a in line):
                        total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.samples.append((time.monotonic() - start, total))

    def growth(self) -> dict[str, float] | None:
        """The same windows as the health rows', over these samples (None: too few)."""
        if not self.samples:
            return None
        (early_from, early_to), (late_from, late_to) = windows(self.samples[-1][0])
        early = [b for t, b in self.samples if early_from <= t <= early_to]
        late = [b for t, b in self.samples if late_from <= t <= late_to]
        if not early or not late or not max(early):
            return None
        early_mb, late_mb = _median(early) / MB, _median(late) / MB
        return {"early_mb": early_mb, "late_mb": late_mb,
                "growth_pct": 100.0 * (late_mb / early_mb - 1.0)}


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return (ordered[middle] + ordered[~middle]) / 2


def run_files(root: Path, run_id: str) -> int:
    """Files the run left under the store root (every table's partition of the run)."""
    marker = f"run_id={run_id}"
    return sum(len(files) for folder, _, files in os.walk(root) if marker in folder)


def accounting(store: Store, run_id: str) -> dict[str, int]:
    """Send rows, and sends with no outcome row (or more than one reply)."""
    events = store.events(run_id).select("kind", "cid").filter(pl.col("cid").is_not_null())
    sends = events.filter(pl.col("kind") == "send").select("cid").unique()
    outcomes = (events.filter(pl.col("kind").is_in(RESOLVED))
                .group_by("cid").agg(pl.len().alias("n"),
                                     (pl.col("kind") == "recv").sum().alias("replies")))
    joined = sends.join(outcomes, on="cid", how="left").collect()
    send_rows = store.events(run_id).filter(pl.col("kind") == "send").select(pl.len())
    return {"send_rows": int(send_rows.collect().item()),
            "unaccounted": int(joined["n"].is_null().sum()),
            "replied_twice": int((joined["replies"].fill_null(0) > 1).sum())}


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    store = Store(root)
    helpers = Helpers(every=min(5.0, args.minutes))
    helpers.start()
    result = execute(scenario(args), store=store, handle_signals=False)
    helpers.done.set()
    s = result.summary
    health = store.health(result.run_id).collect()
    figures: dict[str, Any] = {
        "minutes": args.minutes, "rate": args.rate, "connections": args.connections,
        "run_id": result.run_id, "status": result.status, "sent": s["sent"],
        "received": s["received"], "errors": s["errors"], "timeouts": s["timeouts"],
        "p99_ms": s["latency_ms"]["p99"], "health_rows": health.height,
        "memory": memory_growth(health) if health.height else {},
        "other_processes": helpers.growth(),  # compaction (not a failure criterion)
        "files": run_files(root, result.run_id),
        **accounting(store, result.run_id),
    }
    figures["failures"] = failures(figures, args)
    return figures


def failures(f: dict[str, Any], args: argparse.Namespace) -> list[str]:
    found = []
    if f["status"] != "completed":
        found.append(f"the run is {f['status']}")
    for source in ("client", "target"):
        m = f["memory"].get(source)
        if m is None:
            found.append(f"no health rows for the {source}")
        elif m["growth_pct"] >= args.max_growth:
            found.append(f"{source} memory grew {m['growth_pct']:.1f}% (limit {args.max_growth}%)")
    if f["files"] > args.max_files:
        found.append(f"{f['files']} files left (limit {args.max_files})")
    if f["unaccounted"] or f["replied_twice"] or f["send_rows"] != f["sent"]:
        found.append(f"{f['unaccounted']} sends without an outcome, {f['replied_twice']} "
                     f"answered twice, {f['send_rows']} send rows for {f['sent']} sent")
    return found


def report(f: dict[str, Any]) -> None:
    print(f"soak: {f['minutes']:g} min at {f['rate']:g} msg/s over {f['connections']} "
          f"connections on the built-in target ({f['status']}, run {f['run_id']})")
    print(f"  messages: sent {f['sent']:,} received {f['received']:,} errors {f['errors']} "
          f"timeouts {f['timeouts']}; p99 {f['p99_ms']} ms")
    for source, m in f["memory"].items():
        print(f"  {source} RSS: {m['early_mb']:.1f} MB early -> {m['late_mb']:.1f} MB late "
              f"({m['growth_pct']:+.2f}%)")
    other = f["other_processes"]
    if other is not None:
        print(f"  other client processes (compaction): {other['early_mb']:.1f} MB early -> "
              f"{other['late_mb']:.1f} MB late ({other['growth_pct']:+.2f}%)")
    print(f"  files left: {f['files']}; health rows: {f['health_rows']}")
    print(f"  accounting: {f['send_rows']:,} send rows, {f['unaccounted']} without an outcome, "
          f"{f['replied_twice']} answered twice")
    print("  PASS" if not f["failures"] else "  FAIL: " + "; ".join(f["failures"]))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="messages/s, all connections")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--max-growth", type=float, default=5.0, help="percent")
    parser.add_argument("--max-files", type=int, default=300)
    parser.add_argument("--store", help="keep the run in this store (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    return parser


def main() -> None:
    args = parser().parse_args()
    os.environ.setdefault("STREAMBENCH_HASH_KEY", "benchmark-only-key-0123456789abcdef")
    with tempfile.TemporaryDirectory(prefix="streambench-soak-") as tmp:
        figures = measure(args, Path(args.store) if args.store else Path(tmp) / "store")
    if args.json:
        print(json.dumps(figures))
    else:
        report(figures)
    sys.exit(1 if figures["failures"] else 0)


if __name__ == "__main__":
    main()
