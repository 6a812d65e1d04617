"""Real back ends for the end-to-end tests: each a subprocess written with its framework.

``serve("aiohttp_json")`` starts ``python -m tests.backends.servers.aiohttp_json
--port <free port>`` on 127.0.0.1, waits until the port accepts connections
and stops it by pid at teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streambench.testing.processes import stop_process
from tests.helpers import free_port, wait_for
from tests.mosquitto import port_open

REPO = Path(__file__).resolve().parents[2]
Serve = Callable[..., int]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start a server module of tests/backends/servers; returns its port."""
    started: list[subprocess.Popen[bytes]] = []

    def start(module: str, *args: str, port: int | None = None,
              ready: Callable[[int], bool] = port_open) -> int:
        port = port or free_port()
        with (tmp_path / f"{module}.log").open("wb") as log:  # the child keeps its copy
            proc = subprocess.Popen(
                [sys.executable, "-m", f"tests.backends.servers.{module}", "--port", str(port),
                 *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                    os.environ.get("PYTHONPATH"), str(REPO)]))})
        started.append(proc)

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{module} exited: {(tmp_path / f'{module}.log').read_text()}")
            return ready(port)

        wait_for(up, timeout=30, what=f"{module} on port {port}")
        return port

    yield start
    for proc in started:
        stop_process(proc)


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """Debian's redis-server on 127.0.0.1 and a free port, in memory only; stopped by pid."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    with (tmp_path / "redis.log").open("wb") as log:
        proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp_path)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is None and port_open(port), timeout=30,
                 what=f"redis-server on port {port}")
        yield port
    finally:
        stop_process(proc)
