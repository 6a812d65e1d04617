"""What one machine allows: a run that cannot fit says so in one line, before it connects."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from streambench.errors import ResourceLimit
from streambench.generate.scale.limits import check_memory, kernel_refusal
from tests.helpers import write_scenario

ROOT = Path(__file__).resolve().parents[3]


def _low_open_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_more_connections_than_open_files_is_one_line_before_anything_opens(tmp_path: Path):
    # nothing listens on port 9: the run must stop on the count, not on a connect
    path = write_scenario(tmp_path / "many.yaml", target={"url": "ws://127.0.0.1:9/echo"},
                          load={"connections": 500, "rate": 1, "duration": "1s"})
    done = subprocess.run(
        [sys.executable, "-m", "streambench", "run", str(path), "--workers", "1",
         "--store", str(tmp_path / "store")],
        capture_output=True, text=True, timeout=60, preexec_fn=_low_open_file_limit,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if "open files" in ln]
    assert line.endswith("open files: 500 connections need 600 descriptors in one process, "
                         "its limit is 256 (hard 256); raise the hard limit (ulimit -Hn; "
                         "LimitNOFILE=; docs/scale.md) or split the connections over 4 "
                         "processes (--workers 4)")


def test_the_kernels_refusals_are_named_with_what_to_raise():
    emfile = kernel_refusal(OSError(errno.EMFILE, "Too many open files"))
    assert emfile is not None
    assert str(emfile).startswith("open files: this process reached its limit of ")
    ports = kernel_refusal(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
                           source="127.0.0.3")
    assert str(ports) == ("local ports: no free local port left on source address 127.0.0.3 "
                          "(Cannot assign requested address); add source addresses "
                          "(target.source_addresses, --source-address) or widen "
                          "net.ipv4.ip_local_port_range")
    memory = kernel_refusal(OSError(errno.ENOBUFS, "No buffer space available"))
    assert str(memory).startswith("memory: the kernel refused socket memory")
    assert kernel_refusal(OSError(errno.ECONNREFUSED, "Connection refused")) is None


def test_connections_that_cannot_fit_in_memory_are_refused_up_front():
    check_memory(1000, per_connection=16 << 10)
    with pytest.raises(ResourceLimit, match=r"^memory: 1,000,000,000 connections need about "
                       r"[\d.]+ GiB here \(16 KB each\), [\d.]+ GiB is available; use fewer "):
        check_memory(1_000_000_000, per_connection=16 << 10)
