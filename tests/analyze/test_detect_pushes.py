"""The push_stream rules on a stream of server pushes: a pause, stale pushes, numbers
that never came or came twice; and silence on a clean stream."""

from __future__ import annotations

from typing import Any

from streambench.analyze import detect_anomalies, load_rules, metrics
from tests.analyze.helpers import T0_NS, S, events

PUSH_RULES = [r for r in load_rules() if r.kind == "push_stream"]


def stream(conn: int, *, pause: tuple[float, float] | None = None, stale_at: float = -1,
           skip: int = -1, twice: int = -1) -> list[dict[str, Any]]:
    """Pushes every 50 ms for 6 s, stamped 2 ms before arrival, numbered from 1."""
    rows, previous, n, t = [], None, 0, 0.05
    while t < 6.0:
        if pause is None or not pause[0] <= t < pause[1]:
            n += 1
            stamp = t - (1.5 if abs(t - stale_at) < 0.12 else 0.002)
            for _ in range(2 if n == twice else 0 if n == skip else 1):
                rows.append({"t": t, "kind": "push", "protocol": "sse", "conn": conn,
                             "seq": n, "cid": None, "sent_ns": T0_NS + round(stamp * S),
                             "intended_ns": None if previous is None
                             else T0_NS + round(previous * S)})
            previous = t
        t = round(t + 0.05, 3)
    return [{"t": 0.0, "kind": "connect", "conn": conn, "protocol": "sse"}, *rows]


def found(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    run = metrics(events(rows), manifest={"run_id": "r", "scenario": {"name": "ticker"}})
    anomalies = detect_anomalies(run, rules=PUSH_RULES, fixes=())
    by_rule: dict[str, list[Any]] = {}
    for a in anomalies:
        by_rule.setdefault(a.rule, []).append(a)
    return by_rule


def test_a_clean_stream_raises_nothing() -> None:
    assert found(stream(0) + stream(1)) == {}


def test_a_pause_stale_pushes_and_sequence_gaps_are_each_found() -> None:
    by_rule = found(stream(0, pause=(3.0, 4.6), stale_at=1.5, skip=20, twice=40) + stream(1))
    assert set(by_rule) == {"push-gap", "push-staleness", "push-sequence-gaps"}
    (gap,) = by_rule["push-gap"]
    assert abs(gap.start - (T0_NS + 2.95 * S)) < 0.06 * S  # the silence itself
    assert abs(gap.end - (T0_NS + 4.6 * S)) < 0.06 * S
    (stale,) = by_rule["push-staleness"]
    assert stale.start <= T0_NS + 1.5 * S < stale.end
    problems = by_rule["push-sequence-gaps"]
    assert sum(a.evidence["missing"] for a in problems) == 1
    assert sum(a.evidence["duplicates"] for a in problems) == 1
    assert sum(a.evidence["out_of_order"] for a in problems) == 0
