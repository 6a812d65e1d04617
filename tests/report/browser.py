"""A headless Chromium driven by Playwright for Python (not a test module).

The browser is Debian's chromium (``executable_path``; Playwright downloads
no browser of its own), started with its networking features off and a
fresh profile, so it only ever talks to us over 127.0.0.1 or reads files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")  # fmt: skip
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
VIEWPORT = {"width": 1400, "height": 1000}


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


@contextlib.contextmanager
def chromium(executable: str) -> Iterator[Any]:
    """A Playwright ``Browser`` on ``executable``; closed (and its process ended) after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(FLAGS),
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageLog:
    """What a page asked for and what failed, recorded from Playwright's events."""

    def __init__(self, page: Any) -> None:
        self.requests: list[str] = []
        self.failures: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("requestfailed", lambda request: self.failures.append(
            f"{request.url}: {request.failure}"))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
