"""The scenario report shows soak health when the run has process health rows."""

from __future__ import annotations

import json
from pathlib import Path

from streambench.report.execute import execute_notebook
from tests.analyze.helpers import health_rows, write_health, write_synthetic


def test_the_scenario_report_shows_memory_open_files_and_parts(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_synthetic(store, run_id="soak", scenario="soak", duration=20, noise=False)
    write_health(store, "soak", health_rows(minutes=12, growth={"target": 0.3}))
    output = execute_notebook("scenario_report", output=tmp_path / "report.ipynb",
                              parameters={"run_id": "soak", "store": str(store)})
    cells = json.loads(output.read_text())["cells"]
    source = ["".join(c["source"]) for c in cells]
    soak = next(i for i, s in enumerate(source) if s.startswith("## Soak health")) + 1
    html = "".join("".join(o.get("data", {}).get("text/html", ""))
                   for o in cells[soak]["outputs"])  # fmt: skip
    assert "client 0" in html
    assert "target" in html
    assert any("image/svg+xml" in o.get("data", {}) for o in cells[soak]["outputs"])
    found = "".join("".join(o.get("data", {}).get("text/html", ""))
                    for c in cells[soak + 1:] for o in c.get("outputs", []))
    assert "memory-leak" in found
