"""The fault proxy of a run: ``streambench proxy`` in a child process.

The proxy gets a process (and so a core) of its own, like the built-in
target: it never shares the load generator's event loop or GIL. A run
enters :func:`proxied` once its target URL is known::

    async with proxied(scenario, url, writer) as via:
        ...  # clients dial via.dial; via.start(schedule_zero_mono_ns) starts the clock
    # the proxy's ground truth is in writer's faults

Without ``network_faults`` or ``target.via: proxy`` it yields :data:`DIRECT`
and starts nothing. The proxy listens on 127.0.0.1, so the clients must run
on this host (one process, or local workers; not a Dask cluster elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

from streambench.errors import ConfigError, TargetError
from streambench.scenario.model import Scenario
from streambench.scenario.network import NetworkFault
from streambench.scenario.secrets import resolve

STOP_TIMEOUT_S = 5.0
_DEFAULT_PORTS = {"ws": 80, "http": 80, "grpc": 80, "wss": 443, "https": 443, "grpcs": 443,
                  "mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Via:
    """How a run reaches its target: where clients dial, and the clock's start."""

    dial: tuple[str, int] | None  # None: the URL's own address
    start: Callable[[int], None]  # schedule zero (monotonic ns) -> fault windows count from it


DIRECT = Via(None, lambda zero_mono_ns: None)


def upstream_of(url: str) -> tuple[str, int]:
    """``host, port`` a target URL names (default ports by scheme)."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError("target.url: the fault proxy needs a host and port to forward to, "
                          f"got {parts.scheme}://{parts.hostname or ''}")
    return parts.hostname, port


@contextlib.asynccontextmanager
async def proxied(scenario: Scenario, url: str, writer: Any) -> AsyncIterator[Via]:
    """The run's proxy in front of ``url`` (started target); its rows go to ``writer``."""
    if not scenario.proxied:
        yield DIRECT
        return
    upstream = upstream_of(resolve(url, field="target.url"))
    child = ProxyProcess(scenario.network_faults, seed=scenario.seed, upstream=upstream)
    try:
        async with child:
            yield Via(child.address, child.start_clock)
    finally:
        with contextlib.suppress(Exception):
            writer.submit_faults(child.faults())


class ProxyProcess:
    """An async context manager running ``streambench proxy`` for one run."""

    def __init__(self, faults: tuple[NetworkFault, ...], *, seed: int,
                 upstream: tuple[str, int], startup_timeout: float = 15.0) -> None:
        self.network_faults = faults
        self.seed = seed
        self.upstream = upstream
        self.startup_timeout = startup_timeout
        self.address: tuple[str, int] = ("", 0)
        self._dir: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._rows: list[dict[str, Any]] | None = None

    async def __aenter__(self) -> ProxyProcess:
        self._dir = Path(tempfile.mkdtemp(prefix="streambench-proxy-"))
        try:
            await self._start()
        except BaseException:
            await self._stop()
            self._cleanup()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self._stop()
            self._rows = self._read_rows()
        finally:
            self._cleanup()

    def start_clock(self, zero_mono_ns: int) -> None:
        """Fault windows count from ``zero_mono_ns`` (the schedule's zero, this host)."""
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(orjson.dumps({"zero_mono_ns": zero_mono_ns}) + b"\n")

    def faults(self) -> list[dict[str, Any]]:
        """The ground-truth rows the proxy wrote; once the ``async with`` block has exited."""
        if self._rows is None:
            raise RuntimeError("ProxyProcess.faults() is available once the proxy stopped")
        return list(self._rows)

    def _path(self, name: str) -> Path:
        assert self._dir is not None
        return self._dir / name

    async def _start(self) -> None:
        from streambench.target.embedded import child_env

        faults = [f.model_dump(mode="json", by_alias=True) for f in self.network_faults]
        self._path("faults.json").write_bytes(orjson.dumps(faults))
        argv = [sys.executable, "-m", "streambench.generate.faults.network",
                "--listen", "127.0.0.1:0",
                "--upstream", f"{self.upstream[0]}:{self.upstream[1]}",
                "--faults", str(self._path("faults.json")), "--seed", str(self.seed),
                "--truth", str(self._path("truth.jsonl")), "--clock-from-stdin",
                "--exit-with-parent", str(os.getpid())]
        with self._path("stderr.log").open("wb") as stderr:
            self._process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, env=child_env())
        ready = await self._ready_line()
        host, _, port = ready["listen"].rpartition(":")
        self.address = (host, int(port))

    async def _ready_line(self) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self.startup_timeout)
            ready = orjson.loads(line)
            if not isinstance(ready, dict) or "listen" not in ready:
                raise ValueError(line)
        except TimeoutError:
            raise TargetError(f"the fault proxy printed no ready line within "
                              f"{self.startup_timeout:g}s{self._stderr_tail()}") from None
        except ValueError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 1.0)
            raise TargetError(f"the fault proxy failed to start (exit code "
                              f"{process.returncode}){self._stderr_tail()}") from None
        return ready

    async def _stop(self) -> None:
        """Close its stdin (it stops by itself), then SIGTERM, then kill; by its pid only."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            from streambench.target.processes import stop_child

            await stop_child(process)

    def _read_rows(self) -> list[dict[str, Any]]:
        rows = []
        with contextlib.suppress(FileNotFoundError):
            for line in self._path("truth.jsonl").read_bytes().splitlines():
                with contextlib.suppress(orjson.JSONDecodeError):  # a torn last line
                    rows.append(orjson.loads(line))
        return rows

    def _stderr_tail(self) -> str:
        try:
            lines = self._path("stderr.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {' | '.join(lines[-5:])}" if lines else ""

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
