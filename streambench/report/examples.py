"""Short example runs on the embedded target, so every notebook runs standalone.

A notebook given no run id calls :func:`example_runs`: a few seconds of load
against the built-in echo server with its fault knobs turned (a stall, some
error replies, periodic disconnects), captured into a fresh temporary store
unless a store is given. The reports then have something to show on a fresh
machine, in CI and in ``pytest --nbval-lax notebooks/``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from streambench.capture.store import Store
from streambench.scenario.model import Scenario


def example_scenario(
    *,
    name: str = "example",
    duration: float = 2.5,
    rate: float = 200.0,
    connections: int = 4,
    latency_ms: float = 2.0,
    faults: bool = True,
    seed: int = 0,
) -> Scenario:
    """A small websocket scenario on the embedded target.

    ``faults``: the server stalls every reply for 1.1 s once, answers 2% of
    messages with an error and closes the connection instead of replying to
    0.4% of them (the client reconnects), so
    the anomaly rules, the error and churn charts all have something to show.
    ``latency_ms`` is added by the server to every reply (a slower "build").
    """
    server: dict[str, Any] = {"latency": latency_ms / 1000, "jitter": latency_ms / 2000,
                              "seed": seed}  # fmt: skip
    if faults:
        server.update(stall_every=max(duration * 0.45, 1.2), stall_for=1.1, error_rate=0.02,
                      disconnect_rate=0.004)  # fmt: skip
    return Scenario.model_validate({
        "name": name,
        "seed": seed,
        "target": {"protocol": "websocket", "url": "embedded", "server": server},
        "load": {"connections": connections, "rate": rate, "duration": duration,
                 "timeout": 2.0},
        "message": {"body": {"user_id": "{{user_id}}", "text": "{{sentence}}"}},
        "capture": {"redaction": {"allow": ["text"]}},  # user_id is dropped
        "slo": {"p95_ms": 50, "p99_ms": 200, "error_rate": 0.01},
    })  # fmt: skip


def example_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """``store`` opened; None means a fresh temporary directory (never ``./data``),
    removed when this Python process (a notebook's kernel) exits."""
    from streambench.api import open_store

    if store is None:
        root = tempfile.mkdtemp(prefix="streambench-example-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        return Store(root)
    return open_store(store)


def example_runs(
    *,
    store: Store | str | os.PathLike[str] | None = None,
    scenarios: Sequence[Scenario] | None = None,
    timeout: float = 60.0,
) -> tuple[Store, list[str]]:
    """Run ``scenarios`` (default: one :func:`example_scenario`) at the same time.

    Returns the store (a temporary one when ``store`` is None) and the run ids,
    in the order of ``scenarios``. Raises the first run's error if one failed.
    """
    from streambench.background import start_run

    opened = example_store(store)
    handles = [start_run(s, store=opened) for s in (scenarios or [example_scenario()])]
    results = [h.result(timeout=timeout) for h in handles]
    return opened, [r.run_id for r in results]


def example_history(
    *, store: Store | str | os.PathLike[str] | None = None, duration: float = 2.0
) -> tuple[Store, list[str]]:
    """Three example runs with a knowledge base behind them, for the history reports.

    Two runs where the server stalls (and errs) and one without faults, all
    started at the same time; the anomalies of every run are recorded in the
    store's knowledge base (as ``streambench anomalies`` does) and the stall is
    marked resolved, by the first fix suggested for it, a second after the last
    stall ended. Returns the store and the run ids, oldest first.
    """
    from streambench.analyze import KnowledgeBase, detect_anomalies, metrics

    opened, run_ids = example_runs(store=store, scenarios=[
        example_scenario(duration=duration),
        example_scenario(duration=duration, seed=1),
        example_scenario(duration=duration, seed=2, faults=False),
    ])  # fmt: skip
    knowledge = KnowledgeBase(opened.root)
    stalls = []
    for run_id in run_ids:
        manifest = opened.manifest(run_id)
        found = detect_anomalies(metrics(opened.events(run_id), manifest=manifest),
                                 manifest=manifest)  # fmt: skip
        knowledge.record(found, scenario=manifest["scenario"]["name"])
        stalls += [a for a in found if a.rule == "reply-stall" and a.suggestions]
    if stalls:
        knowledge.resolve(stalls[0].fingerprint, fix=stalls[0].suggestions[0].fix,
                          note="example: applied after the stalls",
                          at=max(a.end for a in stalls) + 1_000_000_000)  # fmt: skip
    return opened, run_ids
