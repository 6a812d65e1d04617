"""`streambench report`: papermill execution, offline HTML, code hidden by default."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from streambench.cli import main
from streambench.report.execute import ReportError, notebook_path, render_report, to_html

from .conftest import Rendered

# A script or stylesheet the page would fetch from the network.
NETWORK_SOURCE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?"
                            r"(?:https?:)?//", re.IGNORECASE)  # fmt: skip


def test_cli_renders_the_report_next_to_the_executed_notebook(rendered: Rendered) -> None:
    assert rendered.cli_status == 0, rendered.stderr
    assert rendered.html.name == f"scenario_report-{rendered.run_id}.html"
    assert rendered.html.is_file()
    executed = nbformat.read(rendered.html.with_suffix(".ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert rendered.run_id in injected[0].source
    assert "executing scenario_report.ipynb" in rendered.stderr  # progress on stderr


def test_html_loads_nothing_from_the_network(rendered: Rendered) -> None:
    page = rendered.html.read_text()
    assert not NETWORK_SOURCE.findall(page)
    assert "cdn." not in page.lower()
    assert "require.js" not in page
    assert "mathjax" not in page.lower()


def test_html_holds_the_charts_and_the_findings(rendered: Rendered) -> None:
    page = rendered.html.read_text()
    charts = re.findall(r"<img[^>]+src=\"data:image/svg\+xml;base64,", page)
    assert len(charts) >= 6  # latency, percentiles, throughput, errors x2, churn
    for heading in ("Summary", "SLO verdicts", "Latency over time", "Throughput",
                    "Connection churn", "Anomalies and suggested fixes"):  # fmt: skip
        assert f">{heading}<" in page
    assert rendered.run_id in page
    assert "reply-stall" in page  # the example's injected stall is found


def test_code_is_hidden_by_default_and_shown_on_request(rendered: Rendered, tmp_path: Path
                                                        ) -> None:
    hidden = rendered.html.read_text()
    assert "sb.charts.offline()" not in hidden
    assert "class=\"jp-CodeMirrorEditor" not in hidden
    shown = to_html(rendered.html.with_suffix(".ipynb"), output=tmp_path / "code.html",
                    show_code=True).read_text()
    assert "offline" in shown
    assert "class=\"jp-CodeMirrorEditor" in shown
    assert not NETWORK_SOURCE.findall(shown)


def test_a_failing_cell_is_one_clear_error(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("run_id = None\nstore = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise ValueError('no such run: ' + str(run_id))"),
    ])  # fmt: skip
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    path = tmp_path / "broken.ipynb"
    nbformat.write(notebook, path)
    expected = r"broken.ipynb: cell In\[3\] failed: ValueError: no such run: r1"
    with pytest.raises(ReportError, match=expected) as caught:
        render_report("r1", notebook=path, out=tmp_path / "out", store=tmp_path / "store")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "out" / "broken-r1.ipynb").is_file()  # kept for debugging


def test_unknown_notebook_names_the_choices() -> None:
    with pytest.raises(ReportError, match="expected one of scenario_report, anomaly_study"):
        notebook_path("scenario_reprot")


def test_cli_report_of_a_missing_run_is_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["report", "no-such-run", "--store", str(tmp_path), "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err
    assert "no-such-run" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_param_must_be_name_equals_value(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["report", "latest", "--store", str(tmp_path), "-p", "baseline"])
    assert status == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
