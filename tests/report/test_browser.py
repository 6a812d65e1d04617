"""A rendered report in a real headless browser (Debian's chromium): it loads with
no failed request, fetches nothing but itself, and its charts are drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from .browser import Browser, find_browser
from .conftest import Rendered

BROWSER = find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium: apt-get install chromium")

CHARTS = "Array.from(document.querySelectorAll('img[src^=\"data:image/svg+xml\"]'))"


def test_report_loads_offline_and_draws_its_charts(rendered: Rendered, tmp_path: Path,
                                                   artifacts: Path) -> None:
    assert BROWSER is not None
    with Browser(BROWSER, profile=tmp_path / "profile") as browser:
        browser.load(rendered.html.as_uri())
        drawn = browser.evaluate(
            f"{CHARTS}.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 50)"
            ".length")  # fmt: skip
        total = browser.evaluate(f"{CHARTS}.length")
        title = browser.evaluate("document.title")
        text = browser.evaluate("document.body.innerText")
        shot = browser.screenshot(artifacts / f"report-{rendered.run_id}.png")
        failures = browser.failures()
        requests = browser.requests()
    assert failures == []
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert total >= 6
    assert drawn == total  # every chart decoded and laid out
    assert rendered.run_id in title
    assert "SLO verdict" in text
    assert shot.stat().st_size > 10_000
