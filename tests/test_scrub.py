"""Secrets never leave the process: one scrubber at every exit (rows, logs, manifests, stderr).

The end-to-end cases are issue 16 item 2: a resolved ``${SB_TOKEN}`` in the target
URL with the server gone, and a password in ``--target``'s user info.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from websockets.sync.server import ServerConnection, serve

from streambench.logs import JsonFormatter, get_logger
from streambench.scenario import parse_scenario, resolve
from streambench.scrub import REDACTED, register, register_url, scrub, scrub_obj
from tests.helpers import cli_env, free_port, store_text

TOKEN = "tok-2f9c81e0-planted"  # planted test value


def test_a_resolved_value_is_scrubbed_in_every_form_it_travels_in():
    assert resolve("Bearer ${SB_SCRUB_T}", field="f", env={"SB_SCRUB_T": "a/b c+d\"é"}) \
        == 'Bearer a/b c+d"é'
    for form in ('a/b c+d"é', quote('a/b c+d"é', safe=""), 'a/b c+d\\"\\u00e9',
                 json.dumps('a/b c+d"é')[1:-1]):
        assert scrub(f"before {form} after") == f"before {REDACTED} after"


def test_credentials_are_found_by_shape_and_templates_are_left_alone():
    cases = {
        "target ws://admin:pw@host:1/x is unreachable": f"target ws://admin:{REDACTED}@host:1/x is"
                                                        " unreachable",
        "--target=mqtt://u:s3cret@h:1883": f"--target=mqtt://u:{REDACTED}@h:1883",
        "https://ghp_abcdef0123456789@github.com/x": f"https://{REDACTED}@github.com/x",
        "ws://h/?room=7&token=abc123": f"ws://h/?room=7&token={REDACTED}",
        "X-Api-Key: k-123, Accept: */*": f"X-Api-Key: {REDACTED}, Accept: */*",
        "Authorization: Basic dXNlcjpwYXNz": f"Authorization: {REDACTED}",
    }
    for text, want in cases.items():
        assert scrub(text) == want
        assert scrub(want) == want  # idempotent
    for safe in ("ws://u:${P}@h/x?token=${T}", "ws://127.0.0.1:8765/echo", "a=b", "plain",
                 "target.headers.Authorization: environment variable API_TOKEN is not set"):
        assert scrub(safe) == safe  # the last: a field path in an error line, not a header


def test_user_info_registers_the_password_and_its_basic_header():
    register_url("ws://bot:hunter2-9f@h/x")
    basic = base64.b64encode(b"bot:hunter2-9f").decode()
    assert scrub(f"server said hunter2-9f and {basic}") == f"server said {REDACTED} and {REDACTED}"


def test_loading_a_scenario_registers_its_credentials(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SB_SCRUB_HEADER", "hdr-58a1f0-value")
    parse_scenario("name: s\nload: {rate: 1, duration: 1}\ntarget:\n"
                   "  headers: {Authorization: 'Bearer ${SB_SCRUB_HEADER}', "
                   "X-Api-Key: literal-key-77f3a9}\n")
    assert scrub("echo: hdr-58a1f0-value / literal-key-77f3a9") == \
        f"echo: {REDACTED} / {REDACTED}"


def test_short_values_are_not_searched_in_free_text():
    register("abc")
    assert scrub("abcdef") == "abcdef"


def test_manifest_like_documents_are_scrubbed_deeply():
    register("deep-secret-4471")
    doc = {"argv": ["run", "--target", "ws://a:b@h/"], "n": [{"deep-secret-4471": 1}], "x": 2}
    assert scrub_obj(doc) == {"argv": ["run", "--target", f"ws://a:{REDACTED}@h/"],
                              "n": [{REDACTED: 1}], "x": 2}


def test_every_streambench_logger_scrubs_before_any_handler(caplog: pytest.LogCaptureFixture):
    register("log-secret-93e1")
    log = get_logger("test_scrub.library")  # outside the CLI-configured tree
    with caplog.at_level(logging.INFO, logger="test_scrub.library"):
        try:
            raise ValueError("failed with log-secret-93e1")
        except ValueError:
            log.exception("reconnect to %s failed", "ws://h/?token=log-secret-93e1",
                          extra={"url": "ws://u:log-secret-93e1@h/"})
    [record] = caplog.records
    line = JsonFormatter().format(record)
    assert "log-secret-93e1" not in line
    assert "log-secret-93e1" not in caplog.text
    assert json.loads(line)["msg"] == f"reconnect to ws://h/?token={REDACTED} failed"


# -- end to end: the CLI against a server that goes away --------------------------

@pytest.fixture
def server_that_goes_away() -> Iterator[int]:
    """A WebSocket echo server that answers 3 messages, closes, and stops listening:
    every reconnect after that is refused."""
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        for _ in range(3):
            ws.send(ws.recv())
        ws.close()
        done.set()

    with serve(handler, "127.0.0.1", 0) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, name="server_that_goes_away")
        thread.start()
        threading.Thread(target=lambda: done.wait(30) and server.shutdown(),
                         name="shutdown_when_done").start()
        yield port
        server.shutdown()
        thread.join(10)


def streambench(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streambench", "--log-level", "info",
                           "--log-format", "json", *argv], cwd=cwd, capture_output=True,
                          text=True, env=cli_env(**env), timeout=60, check=False)


def test_a_token_in_the_url_of_a_server_that_went_away(server_that_goes_away: int,
                                                       tmp_path: Path):
    scenario = tmp_path / "tok.yaml"
    scenario.write_text(
        "name: tok\n"
        f"target: {{url: 'ws://127.0.0.1:{server_that_goes_away}/?token=${{SB_TOKEN}}',\n"
        "         reconnect: {initial: 10ms, max: 50ms}}\n"
        "load: {rate: 20, duration: 1.5s, timeout: 200ms}\n")
    done = streambench("run", str(scenario), "--store", "st", cwd=tmp_path, SB_TOKEN=TOKEN)
    stored = store_text(tmp_path / "st")
    assert "connect_failed" in stored  # the reconnects did fail, and were recorded
    assert '"reconnect failed' in done.stderr
    assert TOKEN not in stored
    assert TOKEN not in done.stderr + done.stdout
    assert f"token={REDACTED}" in stored


def test_a_token_in_the_url_of_a_server_that_is_down(tmp_path: Path):
    scenario = tmp_path / "tok.yaml"
    scenario.write_text(f"name: tok\ntarget: {{url: 'ws://127.0.0.1:{free_port()}/"
                        "?token=${SB_TOKEN}'}\nload: {rate: 20, duration: 1s}\n")
    done = streambench("run", str(scenario), "--store", "st", cwd=tmp_path, SB_TOKEN=TOKEN)
    assert done.returncode == 2
    assert "is unreachable" in done.stderr
    [manifest] = (tmp_path / "st" / "runs").glob("*.json")
    assert "is unreachable" in json.loads(manifest.read_text())["error"]
    assert TOKEN not in store_text(tmp_path / "st") + done.stderr + done.stdout


def test_a_password_in_the_target_option(tmp_path: Path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\nload: {rate: 20, duration: 1s}\n")
    url = f"ws://admin:pw-0c1d7e@127.0.0.1:{free_port()}/chat"
    for argv in (["--target", url], [f"--target={url}"]):
        done = streambench("run", str(scenario), "--store", "st", *argv, cwd=tmp_path)
        assert done.returncode == 2
        assert f"admin:{REDACTED}@" in done.stderr
    stored = store_text(tmp_path / "st")
    assert '"argv"' in stored
    assert f"admin:{REDACTED}@" in stored
    assert "pw-0c1d7e" not in stored + done.stderr + done.stdout


def test_library_code_logs_only_through_scrubbing_loggers():
    package = Path(__file__).resolve().parents[1] / "streambench"
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.name != "logs.py" and "logging.getLogger(" in p.read_text()]
    assert offenders == []  # use streambench.logs.get_logger


DOWN_TARGETS = {  # every protocol, a secret in each place it can travel, nothing listening
    "websocket": "{url: 'ws://u:${SB_TOKEN}@127.0.0.1:PORT/?token=${SB_TOKEN}', "
                 "headers: {X-Key: '${SB_TOKEN}'}}",
    "sse": "{protocol: sse, url: 'http://u:${SB_TOKEN}@127.0.0.1:PORT/e?token=${SB_TOKEN}'}",
    "http-lean": "{protocol: http, url: 'http://127.0.0.1:PORT/e?token=${SB_TOKEN}'}",
    "http-aiohttp": "{protocol: http, http_engine: aiohttp, "
                    "url: 'http://u:${SB_TOKEN}@127.0.0.1:PORT/e?token=${SB_TOKEN}'}",
    "mqtt": "{protocol: mqtt, url: 'mqtt://127.0.0.1:PORT', username: u, "
            "password: '${SB_TOKEN}'}",
    "mqtt-over-ws": "{protocol: mqtt, url: 'ws://127.0.0.1:PORT/mqtt?token=${SB_TOKEN}'}",
    "grpc": "{protocol: grpc, url: 'grpc://127.0.0.1:PORT', method: Unary, "
            "metadata: {authorization: 'Bearer ${SB_TOKEN}'}}",
}


@pytest.mark.parametrize("protocol", DOWN_TARGETS)
async def test_a_secret_of_any_protocol_stays_out_of_the_error_and_the_store(
        protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture):
    """Issue 16 item 2 for the other protocols (in-process: the exception a notebook
    user sees is the line the CLI prints)."""
    from streambench.api import run_async
    from streambench.capture.store import Store
    from streambench.errors import TargetUnreachable
    from streambench.scenario import load_scenario

    monkeypatch.setenv("SB_TOKEN", TOKEN)
    path = tmp_path / "down.yaml"
    path.write_text(f"name: down\ntarget: {DOWN_TARGETS[protocol]}\n".replace(
        "PORT", str(free_port())) + "load: {connections: 1, rate: 10, duration: 300ms}\n")
    store = Store(tmp_path / "st")
    with caplog.at_level(logging.DEBUG, logger="streambench"), \
            pytest.raises(TargetUnreachable) as caught:
        await run_async(load_scenario(path), store=store)
    assert "is unreachable" in str(caught.value)
    [manifest] = store.runs()
    assert manifest["status"] == "failed"
    assert TOKEN not in str(caught.value) + store_text(tmp_path / "st") + caplog.text
