from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop

from streambench.capture.store import Store
from streambench.scrub import KNOWN


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture(autouse=True)
def no_borrowed_running_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Playwright's sync API (one browser per session, tests/report) leaves its loop marked
    as running on the main thread between calls; a test that does not use the browser runs
    without it, or asyncio.run and pytest-asyncio refuse to start a loop of their own."""
    borrowed = None if "browser" in request.fixturenames else asyncio._get_running_loop()
    if borrowed is not None:
        asyncio._set_running_loop(None)
    yield
    if borrowed is not None:
        asyncio._set_running_loop(borrowed)


@pytest.fixture(autouse=True)
def known_secrets() -> Iterator[None]:
    """Secrets registered by one test (resolved ``${...}``) are not scrubbed in the next."""
    yield
    KNOWN.clear()


@pytest.fixture(autouse=True)
def hash_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Scenarios that hash fields need a key; tests about a missing key delete it."""
    key = "test-only-hash-key-0123456789abcdef"
    monkeypatch.setenv("STREAMBENCH_HASH_KEY", key)
    return key


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Async tests run on uvloop, like `streambench run` does."""
    return {"uvloop": uvloop.new_event_loop}
