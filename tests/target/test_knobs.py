"""The pure fault plan: seeded decisions and the stall clock, no sockets."""

from __future__ import annotations

import pytest

from streambench.errors import ConfigError
from streambench.scenario.model import ServerFaults
from streambench.target.knobs import Action, ServerFaultPlan, conn_of, describe_delay


def test_no_knobs_means_plain_echo() -> None:
    plan = ServerFaultPlan(ServerFaults())
    assert not plan.has_any
    assert plan.action() is Action.ECHO
    assert plan.reply_at(1.5) == 1.5


def test_actions_are_reproducible_per_seed() -> None:
    faults = ServerFaults(drop_rate=0.1, error_rate=0.1, disconnect_rate=0.1, seed=7)
    a, b = ServerFaultPlan(faults), ServerFaultPlan(faults)
    seq_a = [a.action() for _ in range(500)]
    seq_b = [b.action() for _ in range(500)]
    assert seq_a == seq_b
    counts = {action: seq_a.count(action) for action in Action}
    assert all(20 < counts[kind] < 90 for kind in (Action.DROP, Action.ERROR, Action.DISCONNECT))
    other = ServerFaultPlan(faults.model_copy(update={"seed": 8}))
    assert [other.action() for _ in range(500)] != seq_a


def test_jitter_does_not_change_which_messages_fail() -> None:
    plain = ServerFaultPlan(ServerFaults(drop_rate=0.3, seed=1))
    jittery = ServerFaultPlan(ServerFaults(drop_rate=0.3, jitter=0.01, seed=1))
    for t in range(100):
        jittery.reply_at(float(t))
        assert plain.action() is jittery.action()


def test_reply_at_adds_latency_and_bounded_jitter() -> None:
    plan = ServerFaultPlan(ServerFaults(latency=0.02, jitter=0.005, seed=3))
    dues = [plan.reply_at(10.0) - 10.0 for _ in range(200)]
    assert all(0.02 <= d <= 0.025 for d in dues)
    assert len(set(dues)) > 100


def test_stall_windows_start_one_period_after_start() -> None:
    plan = ServerFaultPlan(ServerFaults(stall_every=1.0, stall_for=0.25))
    assert plan.stall_window(0.5) is None
    assert plan.stall_window(1.0) == (1.0, 1.25)
    assert plan.stall_window(2.1) == (2.0, 2.25)
    assert plan.stall_window(2.25) is None
    assert plan.next_stall(0.0) == (1.0, 1.25)
    assert plan.next_stall(1.25) == (2.0, 2.25)
    assert plan.reply_at(2.1) == 2.25  # held to the end of the window
    assert plan.reply_at(2.5) == 2.5


def test_stall_longer_than_its_period_is_refused() -> None:
    with pytest.raises(ConfigError, match="stall_for"):
        ServerFaultPlan(ServerFaults(stall_every=1.0, stall_for=1.0))


def test_disconnect_ticks() -> None:
    plan = ServerFaultPlan(ServerFaults(disconnect_every=2.0))
    assert plan.disconnect_tick(0.0) == 2.0
    assert plan.disconnect_tick(2.0) == 4.0
    assert ServerFaultPlan(ServerFaults()).disconnect_tick(1.0) is None


@pytest.mark.parametrize(
    ("cid", "conn"), [("3-17", 3), ("12-0", 12), ("x-1", None), ("7", None), (None, None)]
)
def test_conn_of(cid: str | None, conn: int | None) -> None:
    assert conn_of(cid) == conn


def test_describe_delay() -> None:
    assert describe_delay(ServerFaults(latency=0.02, jitter=0.005)) == "latency=20ms jitter=5ms"


def test_public_names_of_the_package() -> None:
    from streambench import target

    assert sorted(target.__all__) == target.__all__
    for name in target.__all__:
        assert getattr(target, name).__name__ == name
