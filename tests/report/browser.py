"""A headless Chromium driven over the DevTools protocol (not a test module).

Enough of CDP to load a local page and say what happened: every request the
page made, every request that failed, what the DOM holds, and a screenshot.
The browser starts with networking features off and a fresh profile; it only
ever talks to us over 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
         "--window-size=1280,900")  # fmt: skip
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    """``$STREAMBENCH_CHROMIUM``, else Debian's chromium, else another Chromium on PATH."""
    explicit = os.environ.get("STREAMBENCH_CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless browser process with one page; use as a context manager."""

    def __init__(self, executable: str, *, profile: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self._drain: threading.Thread | None = None
        self.log: list[str] = []  # the browser's stderr, for failure messages

    def __enter__(self) -> Browser:
        port = self._devtools_port()
        self.ws = self._stack.enter_context(
            connect(self._page_socket(port), max_size=None, open_timeout=self.timeout))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._drain is not None:
            self._drain.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def _devtools_port(self) -> int:
        """Read the 'DevTools listening on ws://127.0.0.1:PORT/...' line from stderr."""
        assert self.process.stderr is not None
        for line in self.process.stderr:  # ends when the browser exits
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                # keep reading, so a chatty browser never blocks on a full pipe
                self._drain = threading.Thread(target=self._keep_log, daemon=True,
                                               name="chromium-stderr")
                self._drain.start()
                return int(match.group(1))
        raise RuntimeError(f"browser exited ({self.process.wait()}) before DevTools listened")

    def _keep_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    def _page_socket(self, port: int) -> str:
        url = f"http://127.0.0.1:{port}/json/list"
        with urllib.request.urlopen(url, timeout=self.timeout) as response:
            targets = json.load(response)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events seen meanwhile are kept."""
        assert self.ws is not None
        ident = next(self._ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_event(self, method: str) -> dict[str, Any]:
        """The first event ``method`` (already received or the next to come)."""
        assert self.ws is not None
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            self.events.append(message)
            if message.get("method") == method:
                return message

    def load(self, url: str) -> None:
        """Navigate and wait for the load event, recording network events."""
        self.call("Network.enable")
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        # a round trip after the load event flushes the events sent before it
        self.call("Runtime.evaluate", expression="1")

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]  # fmt: skip

    def failures(self) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e.get("method") == "Network.loadingFailed"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport)."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path
