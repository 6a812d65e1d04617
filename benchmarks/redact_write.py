"""Events/s through redaction + Parquet write, on one core.

    python benchmarks/redact_write.py [--events 200000] [--threads 1]

Builds a batch of events with EVENT_SCHEMA columns and realistic ~300-byte JSON
payloads carrying PII (e-mail, phone numbers, cards, IPs in free text; a user
id to hash), then times, in the same run:

* baseline: writing the unredacted table to Parquet (zstd, as the capture
  writer does);
* redact + write: ``Redactor.redact_table`` then the same write.

Polars and Arrow are held to ``--threads`` threads (default 1: the goal is
stated per core). Prints events/s and the ratio to the 200,000 events/s goal.
Generated data goes to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

GOAL = 200_000


def _threads_from_argv() -> int:
    # Thread pools are sized at import: read the flag before importing polars.
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
    return 1


os.environ.setdefault("POLARS_MAX_THREADS", str(_threads_from_argv()))
# Run from a checkout without installing: the repository root holds the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import random  # noqa: E402

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from streambench.capture.keys import MasterKey  # noqa: E402
from streambench.capture.redact import Redactor  # noqa: E402
from streambench.capture.schema import EVENT_SCHEMA  # noqa: E402
from streambench.scenario.model import Redaction  # noqa: E402

WORDS = (
    "the", "order", "shipped", "late", "again", "and", "support", "said", "they", "would",
    "call", "back", "about", "refund", "for", "my", "last", "two", "tickets", "before",
    "friday", "please", "check", "account",
)
PII = (
    lambda r: f"call me at +1 415 555 {r.randrange(1000, 9999)}",
    lambda r: f"my mail is user{r.randrange(10_000)}@example.com",
    lambda r: "card 4111 1111 1111 1111 expires soon",
    lambda r: f"login from 10.0.{r.randrange(256)}.{r.randrange(256)}",
    lambda r: f"or (212) 555-{r.randrange(1000, 9999)} after six",
)


def payload(rng: random.Random, conn: int, seq: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(12, 22)))
    text = f"{words} {rng.choice(PII)(rng)}" if rng.random() < 0.6 else words
    body = {
        "user_id": f"u-{rng.randrange(1000)}",
        "email": f"person{rng.randrange(5000)}@mail.example.org",
        "name": rng.choice(("Ada Lovelace", "Alan Turing", "Grace Hopper")),
        "text": text,
        "value": round(rng.random() * 100, 3),
        "device": {"model": "Pixel 8", "os": "android 15", "ip": "192.168.1.20"},
        "cid": f"{conn}-{seq}",
        "seq": seq,
    }
    return orjson.dumps(body).decode()


def events(n: int, *, seed: int = 7) -> pa.Table:
    rng = random.Random(seed)
    conns = [i % 64 for i in range(n)]
    seqs = [i // 64 for i in range(n)]
    start = 1_794_000_000_000_000_000
    columns = {
        "run_id": pa.array(["bench"] * n),
        "ts": pa.array([start + i * 50_000 for i in range(n)], pa.timestamp("ns", "UTC")),
        "kind": pa.array(["recv" if i % 2 else "send" for i in range(n)]),
        "protocol": pa.array(["websocket"] * n),
        "conn": pa.array(conns, pa.int32()),
        "seq": pa.array(seqs, pa.int64()),
        "cid": pa.array([f"{c}-{s}" for c, s in zip(conns, seqs, strict=True)]),
        "topic": pa.array(["/ws/chat"] * n),
        "payload": pa.array([payload(rng, c, s) for c, s in zip(conns, seqs, strict=True)]),
    }
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in EVENT_SCHEMA},
                    schema=EVENT_SCHEMA)


def best_of(runs: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pa.set_cpu_count(args.threads)
    pa.set_io_thread_count(args.threads)
    table = events(args.events)
    policy = Redaction(allow=("text", "value", "device.model"), hash=("user_id",))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "part.parquet")

        def baseline() -> None:
            pq.write_table(table, path, compression="zstd")

        def redact_write() -> None:
            redactor = Redactor(policy, key_provider=MasterKey(b"benchmark-master-key-0123456789"))
            pq.write_table(redactor.redact_table(table), path, compression="zstd")

        counts: dict[str, int] = {}

        def redact_only() -> None:
            redactor = Redactor(policy, key_provider=MasterKey(b"benchmark-master-key-0123456789"))
            redactor.redact_table(table)
            counts.update(redactor.counts)

        base = best_of(args.runs, baseline)
        full = best_of(args.runs, redact_write)
        only = best_of(args.runs, redact_only)
    n = args.events
    avg = sum(len(p) for p in table.column("payload").to_pylist()) / n
    print(f"events: {n:,}  payload: {avg:.0f} bytes avg  threads: {args.threads}")
    print(f"baseline   (parquet write only)      {n / base:>12,.0f} events/s")
    print(f"redaction only                       {n / only:>12,.0f} events/s")
    print(f"redaction + parquet write            {n / full:>12,.0f} events/s   "
          f"ratio to {GOAL:,} goal: {n / full / GOAL:.2f}")
    print(f"rows walked in Python (slow path): {counts.get('slow_path', 0):,} of "
          f"{counts.get('json_filtered', 0):,} JSON payloads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
