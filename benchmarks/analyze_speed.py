"""How long metrics + anomaly detection take over a large synthetic run.

    python benchmarks/analyze_speed.py [--events 10_000_000] [--keep DIR]

Synthesises a run of about ``--events`` events (constant rate, 100 connections,
a few injected faults) into a temporary store, then times, reading through the
store: ``metrics`` (one pass over the events) and ``detect_anomalies`` with the
default rules (reusing the metrics). Prints wall and CPU time; the goal is under
10 s (wall) for 10 million events on a 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from streambench.analyze import detect_anomalies, load_rules, metrics
from streambench.capture.store import Store
from streambench.testing.synth import InjectedFault, SyntheticRun, write_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", help="write the store here instead of a temporary directory")
    args = parser.parse_args()
    rate = 5000.0
    duration = args.events / 2 / rate  # one send and one reply per message
    run = SyntheticRun(
        run_id="speed", scenario="speed", rate=rate, duration=duration, connections=100,
        faults=(InjectedFault("stall", duration * 0.3, 2.0),
                InjectedFault("drop", duration * 0.6, 5.0, 0.05),
                InjectedFault("schema_drift", duration * 0.8, 3.0, 0.1)),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        started = time.perf_counter()
        manifest = write_run(root, run)
        print(f"synthesised {manifest['counts']['events']:,} events "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
        store = Store(root)
        rules = load_rules()
        started, cpu_started = time.perf_counter(), time.process_time()
        measured = metrics(store.events("speed"), manifest=store.manifest("speed"))
        after_metrics = time.perf_counter()
        found = detect_anomalies(measured, rules=rules)
        done, cpu_done = time.perf_counter(), time.process_time()
    print(
        f"metrics:    {after_metrics - started:6.2f} s "
        f"({measured.run['sent']:,} sent, {measured.windows.height} windows)"
    )
    print(f"anomalies:  {done - after_metrics:6.2f} s ({len(found)} incidents)")
    print(f"total:      {done - started:6.2f} s  (goal < 10 s for 10M events)")
    # CPU time summed over polars' threads: a load-independent figure on a shared machine.
    print(f"cpu time:   {cpu_done - cpu_started:6.2f} s")


if __name__ == "__main__":
    main()
