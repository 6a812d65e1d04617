"""A rendered report in a real headless browser (Debian's chromium, driven by
Playwright; the session's ``browser`` fixture, which fails without chromium): it
loads with no failed request, fetches nothing but itself, and its charts are
drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .browser import VIEWPORT, PageLog
from .conftest import Rendered

CHARTS = "Array.from(document.querySelectorAll('img[src^=\"data:image/svg+xml\"]'))"


def test_report_loads_offline_and_draws_its_charts(rendered: Rendered, browser: Any,
                                                   artifacts: Path) -> None:
    page = browser.new_page(viewport=VIEWPORT)
    log = PageLog(page)
    page.goto(rendered.html.as_uri(), wait_until="load")
    drawn = page.evaluate(
        f"{CHARTS}.filter(i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 50)"
        ".length")  # fmt: skip
    total = page.evaluate(f"{CHARTS}.length")
    title = page.title()
    text = page.inner_text("body")
    shot = artifacts / f"report-{rendered.run_id}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert log.failures == []
    assert all(url.startswith(("file://", "data:")) for url in log.requests), log.requests
    assert total >= 6
    assert drawn == total  # every chart decoded and laid out
    assert rendered.run_id in title
    assert "SLO verdict" in text
    assert shot.stat().st_size > 10_000
