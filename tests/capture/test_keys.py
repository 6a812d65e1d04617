"""Keyed hashing: periods, rotation, key files, destruction, missing keys."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from streambench.capture.keys import (
    ENV_VAR,
    Hasher,
    KeyFile,
    MasterKey,
    create_key_file,
    destroy_period,
    load_key_provider,
    period_ids,
)
from streambench.capture.redact import Redactor
from streambench.errors import ConfigError
from streambench.scenario.model import Redaction

NOV = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
NOV_LATE = datetime(2026, 11, 29, 23, 59, tzinfo=UTC)
DEC = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)


def ts(*moments: datetime) -> pa.Array:
    return pa.array(list(moments), pa.timestamp("ns", "UTC"))


@pytest.mark.parametrize(
    ("rotation", "expected"),
    [
        ("daily", ["2026-11-03", "2026-11-29", "2026-12-01"]),
        ("weekly", ["2026-W45", "2026-W48", "2026-W49"]),
        ("monthly", ["2026-11", "2026-11", "2026-12"]),
        ("never", ["all", "all", "all"]),
    ],
)
def test_period_ids(rotation: str, expected: list[str]):
    assert period_ids(ts(NOV, NOV_LATE, DEC), rotation).to_pylist() == expected


def hashed(redactor: Redactor, user: str, when: datetime) -> str:
    [out] = redactor.redact_payloads([json.dumps({"user_id": user})], ts=when)
    assert out is not None
    return str(json.loads(out)["user_id"])


def test_rotation_links_within_a_period_and_not_across():
    redactor = Redactor(Redaction(hash=("user_id",), rotation="monthly"))
    first, later, next_month = (hashed(redactor, "u-42", t) for t in (NOV, NOV_LATE, DEC))
    assert first == later
    assert first.startswith("h1:2026-11:")
    assert next_month.startswith("h1:2026-12:")
    assert first.split(":")[2] != next_month.split(":")[2]
    assert hashed(redactor, "u-43", NOV) != first


def test_hash_depends_on_the_secret(monkeypatch: pytest.MonkeyPatch):
    one = hashed(Redactor(Redaction(hash=("user_id",))), "u-42", NOV)
    monkeypatch.setenv(ENV_VAR, "another-secret-of-enough-length")
    assert hashed(Redactor(Redaction(hash=("user_id",))), "u-42", NOV) != one


def test_missing_key_fails_fast_with_one_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ConfigError) as info:
        Redactor(Redaction(hash=("user_id",)))
    assert "STREAMBENCH_HASH_KEY" in str(info.value)
    assert "\n" not in str(info.value)
    Redactor(Redaction(allow=("text",)))  # no hash fields: no key needed


def test_missing_or_bad_key_file_fails_fast(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        Redactor(Redaction(hash=("user_id",), key_file=str(tmp_path / "nope.json")))
    bad = tmp_path / "bad.json"
    bad.write_text('{"periods": []}')
    with pytest.raises(ConfigError, match="not a streambench key file"):
        Redactor(Redaction(hash=("user_id",), key_file=str(bad)))


def test_short_master_is_refused():
    with pytest.raises(ConfigError, match="too short"):
        load_key_provider(key_file=None, environ={ENV_VAR: "short"})


def test_key_file_creates_period_keys_on_first_use_and_keeps_them(tmp_path: Path):
    path = create_key_file(tmp_path / "keys.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    policy = Redaction(hash=("user_id",), key_file=str(path))
    first = hashed(Redactor(policy), "u-42", NOV)
    doc = json.loads(path.read_text())
    assert list(doc["periods"]) == ["2026-11"]
    assert hashed(Redactor(policy), "u-42", NOV) == first  # same key read back
    assert "u-42" not in path.read_text()


def test_destroying_a_period_makes_its_data_unlinkable(tmp_path: Path):
    path = create_key_file(tmp_path / "keys.json")
    policy = Redaction(hash=("user_id",), key_file=str(path))
    hashed(Redactor(policy), "u-42", NOV)
    assert destroy_period(path, "2026-11") is True
    provider = KeyFile(path)
    assert provider.key("2026-11") is None  # never re-created
    assert provider.held_periods() == []
    redactor = Redactor(policy)
    [out] = redactor.redact_payloads(['{"user_id": "u-42", "cid": "1-1"}'], ts=NOV)
    assert out == '{"cid":"1-1"}'
    assert redactor.counts["hash_key_destroyed"] == 1


def test_hasher_leaves_hashed_values_alone_and_keeps_nulls():
    hasher = Hasher(MasterKey(b"m" * 32))
    once = hasher.hash_array(pa.array(["u-1", None]), pa.array(["2026-11", "2026-11"]))
    twice = hasher.hash_array(once, pa.array(["2026-12", "2026-12"]))
    assert once.to_pylist() == twice.to_pylist()
    assert once[1].as_py() is None
