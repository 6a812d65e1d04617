from __future__ import annotations

from pathlib import Path

import pytest

from streambench.capture.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture(autouse=True)
def hash_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Scenarios that hash fields need a key; tests about a missing key delete it."""
    key = "test-only-hash-key-0123456789abcdef"
    monkeypatch.setenv("STREAMBENCH_HASH_KEY", key)
    return key
