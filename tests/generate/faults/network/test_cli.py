"""``streambench proxy`` standalone: in front of a real server, stopped by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streambench.cli import main
from tests.helpers import TIME_SCALE


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A blocking echo server on 127.0.0.1 in a thread (one connection at a time)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, name="echo", daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[4])}
    return subprocess.Popen([sys.executable, "-m", "streambench", "proxy", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_the_proxy_forwards_injects_and_prints_its_ground_truth_on_ctrl_c(tmp_path: Path,
                                                                          echo_port: int) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("seed: 4\nnetwork_faults:\n"
                      "  - {kind: latency, delay: 150ms, direction: downstream}\n")
    proc = start("--upstream", f"127.0.0.1:{echo_port}", "--faults", str(faults))
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["upstream"] == f"127.0.0.1:{echo_port}"
        host, _, port = ready["listen"].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=5 * TIME_SCALE) as sock:
            began = time.monotonic()
            sock.sendall(b"hello")
            assert sock.recv(10) == b"hello"
            assert time.monotonic() - began >= 0.15
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=10 * TIME_SCALE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["source"], r["kind"]) for r in rows] == [("network", "latency")]
    assert rows[0]["detail"] == "latency 150ms downstream on 1 connection, 5 bytes"
    assert "1 network fault(s), seed 4" in err
    assert "Traceback" not in err


def test_truth_can_go_to_a_file_and_sigterm_stops_cleanly(tmp_path: Path, echo_port: int) -> None:
    truth = tmp_path / "truth.jsonl"
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {kind: reset, at: 0s}\n")  # a bare list works too
    proc = start("--upstream", f"127.0.0.1:{echo_port}", "--faults", str(faults),
                 "--truth", str(truth))
    try:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10 * TIME_SCALE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == ""  # the ready line was read; no rows on stdout
    assert truth.read_text() == ""  # the reset hit no connection: nothing was injected


@pytest.mark.parametrize(("args", "expected"), [
    (["--upstream", "nowhere"], "--upstream: expected HOST:PORT such as 127.0.0.1:8080, "
     "got 'nowhere'"),
    (["--upstream", "127.0.0.1:9", "--listen", "127.0.0.1:99999"], "--listen: expected "
     "HOST:PORT"),
    (["--upstream", "127.0.0.1:9", "--faults", "missing.yaml"], "missing.yaml: file not found"),
])
def test_bad_flags_and_files_are_one_line_errors(capsys: pytest.CaptureFixture[str],
                                                 args: list[str], expected: str) -> None:
    assert main(["proxy", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("streambench: error: ")
    assert expected in err


def test_a_bad_faults_file_names_the_field_and_line(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("network_faults:\n  - {kind: latency, delay: 10ms}\n"
                      "  - {kind: bandwidth, rate: fast}\n")
    assert main(["proxy", "--upstream", "127.0.0.1:9", "--faults", str(faults)]) == 2
    err = capsys.readouterr().err
    assert f"{faults}:3: network_faults[1].rate: expected a rate in bytes/s" in err
    assert len(err.strip().splitlines()) == 1


def test_a_port_in_use_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["proxy", "--upstream", "127.0.0.1:9", "--listen",
                     f"127.0.0.1:{port}"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"streambench: error: proxy: cannot listen on 127.0.0.1:{port}: Address already in use")
