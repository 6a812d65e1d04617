"""A real mosquitto broker for tests and benchmarks (not a test module).

::

    with Mosquitto(tmp_path) as broker:
        url = broker.url            # mqtt://127.0.0.1:<free port>
        broker.restart()            # same port, new process
        broker.stop()

The broker gets a config file in ``directory``, listens on 127.0.0.1 only and
is considered up once its port accepts a TCP connection (polled, bounded by
``start_timeout``). It is stopped by its pid: SIGTERM, then SIGKILL if it
has not exited within ``STOP_TIMEOUT_S``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streambench.testing.processes import stop_process

STOP_TIMEOUT_S = 5.0
POLL_S = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A mosquitto child process on a free port of 127.0.0.1."""

    def __init__(self, directory: str | os.PathLike[str], *, port: int | None = None,
                 extra_config: str = "", start_timeout: float = 10.0) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.extra_config = extra_config
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def start(self) -> None:
        """Start the broker and wait until its port accepts connections."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 0\n"  # unlimited: QoS 1 must not lose to a queue limit
            # As root, mosquitto would switch to user "mosquitto", who cannot read tmp_path.
            f"user {getpass.getuser()}\n"
            f"{self.extra_config}\n"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([binary, "-c", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while not port_open(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-500:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {self.port} within "
                                   f"{self.start_timeout:g}s")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """SIGTERM by pid, wait (bounded), SIGKILL if still running."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
