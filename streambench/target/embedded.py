"""The target for ``url: embedded``: ``streambench serve`` in a child process.

The child has its own process (and so its own core), so the target does not
steal CPU from the load generator it is measured by, and its own session, so
a signal meant for the run's process group (Ctrl-C, a Jupyter kernel
interrupt) never kills the target of a run that goes on. Usage::

    async with EmbeddedTarget(scenario.target.server) as target:
        ...  # drive load at target.ws_url / target.http_url
    rows = target.faults()  # ground truth, once the block has exited

Start-up failures (the child exits, or prints no ready line within
``startup_timeout``) raise :class:`~streambench.errors.TargetError` with the
tail of the child's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

import streambench
from streambench.errors import TargetError
from streambench.scenario.model import ServerFaults
from streambench.target.knobs import describe_delay
from streambench.target.processes import knob_argv, stop_child

STOP_TIMEOUT_S = 5.0
STDERR_TAIL_LINES = 10
# The folder of a target's ground truth and stderr, under $TMPDIR; removed by the run, or
# by the target itself when the run was killed (see streambench.target.commands).
TEMP_PREFIX = "streambench-target-"


def serve_argv(faults: ServerFaults, *, faults_out: str, grpc: bool = False,
               processes: int = 1) -> list[str]:
    """The child's command line for these knobs (only knobs that differ from the default)."""
    argv = [sys.executable, "-m", "streambench", "serve", "--port", "0", "--faults-out", faults_out,
            "--exit-with-parent", str(os.getpid())]
    if grpc:
        argv += ["--grpc-port", "0"]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return argv + knob_argv(faults)


class EmbeddedTarget:
    """An async context manager running the built-in target in a child process."""

    def __init__(self, faults: ServerFaults, *, startup_timeout: float = 15.0,
                 grpc: bool = False, processes: int = 1) -> None:
        self._faults_config = faults
        self._grpc = grpc
        self._processes = processes  # see streambench.target.processes
        self._startup_timeout = startup_timeout
        self._dir: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._rows: list[dict[str, Any]] | None = None
        self._ready_ns = 0
        self.ws_url = ""
        self.http_url = ""
        self.grpc_url = ""  # with grpc=True: the gRPC echo service (grpc_echo.py)
        self.pid = 0
        self.pids: list[int] = []  # every process of the target (several with processes > 1)

    async def __aenter__(self) -> EmbeddedTarget:
        self._dir = tempfile.mkdtemp(prefix=TEMP_PREFIX)
        try:
            await self._start()
        except BaseException:
            await self._stop()
            self._cleanup_dir()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stop()
            self._rows = self._read_rows()
        finally:
            self._cleanup_dir()

    def faults(self) -> list[dict[str, Any]]:
        """The ground-truth rows the target reported; call after the ``async with`` block."""
        if self._rows is None:
            raise RuntimeError("EmbeddedTarget.faults() is available once the target stopped")
        return list(self._rows)

    @property
    def _faults_path(self) -> Path:
        assert self._dir is not None
        return Path(self._dir) / "faults.jsonl"

    @property
    def _stderr_path(self) -> Path:
        assert self._dir is not None
        return Path(self._dir) / "stderr.log"

    async def _start(self) -> None:
        argv = serve_argv(self._faults_config, faults_out=str(self._faults_path),
                          grpc=self._grpc, processes=self._processes)
        with self._stderr_path.open("wb") as stderr:  # the child keeps its own handle
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=child_env(),
                # A session of its own: a signal to the group of the process that runs the
                # load (Ctrl-C in a terminal, Jupyter's Kernel > Interrupt) never reaches the
                # target; its run stops it (SIGTERM, below), or it exits with its parent.
                start_new_session=True,
            )
        ready = await self._read_ready_line()
        self.ws_url, self.http_url, self.pid = ready["ws_url"], ready["http_url"], ready["pid"]
        self.pids = ready.get("pids", [self.pid])
        self.grpc_url = ready.get("grpc_url", "")
        self._ready_ns = time.time_ns()

    async def _read_ready_line(self) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), self._startup_timeout)
        except TimeoutError:
            raise TargetError(
                f"embedded target printed no ready line within {self._startup_timeout:g}s"
                f"{self._stderr_tail()}"
            ) from None
        try:
            ready = orjson.loads(line)
            if not isinstance(ready, dict) or not {"ws_url", "http_url", "pid"} <= ready.keys():
                raise ValueError(line)
        except ValueError:
            code = await _exit_code(process)
            raise TargetError(
                f"embedded target failed to start (exit code {code}){self._stderr_tail()}"
            ) from None
        return ready

    async def _stop(self) -> None:
        """SIGTERM the child (by its pid only), wait, kill if it does not stop."""
        if self._process is not None:
            await stop_child(self._process)

    def _read_rows(self) -> list[dict[str, Any]]:
        rows = []
        with contextlib.suppress(FileNotFoundError):
            for line in self._faults_path.read_bytes().splitlines():
                with contextlib.suppress(orjson.JSONDecodeError):  # a torn last line
                    rows.append(orjson.loads(line))
        return self._with_delay_row(rows)

    def _with_delay_row(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A killed child never wrote its closing "delay" row: supply it from our clocks."""
        faults = self._faults_config
        has_delay = faults.latency > 0 or faults.jitter > 0
        if not has_delay or not self._ready_ns or any(r["kind"] == "delay" for r in rows):
            return rows
        rows.append(
            {
                "source": "target",
                "kind": "delay",
                "start_ns": self._ready_ns,
                "end_ns": time.time_ns(),
                "conn": None,
                "cid": None,
                "detail": describe_delay(faults) + " (target killed; times from the runner)",
            }
        )
        return rows

    def _stderr_tail(self) -> str:
        try:
            lines = self._stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        tail = " | ".join(lines[-STDERR_TAIL_LINES:])
        return f": {tail}" if tail else ""

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


async def _exit_code(process: asyncio.subprocess.Process) -> int | None:
    """The child's exit code if it ends within a second (it usually already has)."""
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(process.wait(), 1.0)
    return None


def child_env() -> dict[str, str]:
    """Our environment, with this streambench first on the child's import path."""
    env = dict(os.environ)
    root = str(Path(streambench.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
