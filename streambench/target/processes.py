"""``streambench serve --processes N``: one port, several processes (SO_REUSEPORT).

A process holds as many connections as its open-file limit allows (the hard
limit, ``ulimit -Hn``, less some headroom; about 19,900 with the 20,000 of a
default container). Past that the built-in target runs as several processes
listening on the same port, and the kernel spreads new connections over them
by a hash of each connection's addresses and ports.

The process started first binds the port (0: any free one), then starts the
*helpers* on that port (``--reuse-port``, ``--exit-with-parent``: a killed
parent takes them along); its ready line names every pid (``pids``) and
stopping it stops them, each by its pid. Every helper has its own fault plan
(the same knobs and seed) and appends its ground-truth rows to the same
``--faults-out`` file, a line per write. The gRPC echo (``--grpc-port``) runs
in the first process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import orjson

from streambench.errors import TargetError
from streambench.scenario.model import ServerFaults

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def knob_argv(faults: ServerFaults) -> list[str]:
    """The ``serve`` flags for these knobs (only knobs that differ from the default)."""
    argv = []
    for field, value in faults.model_dump(exclude_defaults=True).items():
        if value is not None:
            argv += [f"--{field.replace('_', '-')}", repr(value) if field != "seed" else str(value)]
    return argv


def helper_argv(*, host: str, port: int, faults: ServerFaults, faults_out: str | None
                ) -> list[str]:
    argv = [sys.executable, "-m", "streambench", "serve", "--host", host, "--port", str(port),
            "--reuse-port", "--exit-with-parent", str(os.getpid()), *knob_argv(faults)]
    if faults_out:
        argv += ["--faults-out", faults_out]
    return argv


class Helpers:
    """The helper processes of a multi-process target: started, then stopped, by pid."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def start(self, count: int, argv: list[str]) -> None:
        """Start ``count`` helpers and wait for each one's ready line; TargetError if one fails."""
        from streambench.target.embedded import child_env

        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                env=child_env())
            self.processes.append(process)
        for process in self.processes:
            await self._ready(process)

    async def _ready(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            orjson.loads(line)
        except (TimeoutError, orjson.JSONDecodeError):
            raise TargetError(f"serve --processes: helper process {process.pid} did not start "
                              f"(see its lines above on stderr)") from None

    async def stop(self) -> None:
        """SIGTERM every helper (by its pid), wait, kill the ones that do not stop."""
        await asyncio.gather(*(stop_child(process) for process in self.processes))


async def stop_child(process: asyncio.subprocess.Process) -> None:
    """SIGTERM a child we started (by its pid only), wait, kill it if it does not stop."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
