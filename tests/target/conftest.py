"""Fixtures for the target tests: a real server on 127.0.0.1, its fault rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from streambench.scenario.model import ServerFaults
from streambench.target.server import RunningServer, start_server

StartServer = Callable[..., Awaitable[tuple[RunningServer, list[dict[str, Any]]]]]


@pytest.fixture
async def serve() -> AsyncIterator[StartServer]:
    """``server, rows = await serve(latency=0.02, ...)``: closed at teardown."""
    started: list[RunningServer] = []

    async def start(**knobs: Any) -> tuple[RunningServer, list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        server = await start_server(faults=ServerFaults(**knobs), fault_sink=rows.append)
        started.append(server)
        return server, rows

    yield start
    for server in started:
        await server.close()
