"""Notebooks as reports: execute with papermill, render to offline HTML with nbconvert.

``render_report(run_id, out=...)`` is what ``streambench report`` does:

1. papermill executes ``notebooks/<name>.ipynb`` with ``run_id`` and ``store``
   injected as parameters, in a fresh kernel whose working directory is the
   output folder (so a notebook never writes into the source tree) and whose
   ``PYTHONPATH`` starts with the directory this ``streambench`` was imported
   from (so a checkout works without installing);
2. the executed notebook is kept beside the HTML (``<stem>.ipynb``): it is the
   report's evidence and can be opened in JupyterLab;
3. nbconvert renders it with the ``streambench`` template: the lab look, code
   cells left out unless ``show_code``, and no script or stylesheet loaded from
   the network (charts are inline SVG, see :mod:`streambench.report.charts`).

A notebook that fails raises :class:`ReportError` naming the notebook and the
failing cell's error; the partly executed notebook is still written, for
debugging.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streambench
from streambench.errors import ReportError

NOTEBOOKS = ("scenario_report", "anomaly_study", "regression_compare", "nightly",
             "live_dashboard")  # fmt: skip
"""The notebooks shipped in ``notebooks/``; ``scenario_report`` is the default report."""

TEMPLATES = Path(__file__).with_name("templates")
_PACKAGE_PARENT = Path(streambench.__file__).resolve().parent.parent


def notebooks_dir() -> Path:
    """Where the shipped notebooks live: ``$STREAMBENCH_NOTEBOOKS``, else ``notebooks/``
    beside the package (a checkout or an editable install)."""
    explicit = os.environ.get("STREAMBENCH_NOTEBOOKS")
    return Path(explicit) if explicit else _PACKAGE_PARENT / "notebooks"


def notebook_path(notebook: str | os.PathLike[str]) -> Path:
    """A shipped notebook by name (``scenario_report``) or any ``.ipynb`` path."""
    path = Path(notebook)
    if path.suffix == ".ipynb":
        if not path.is_file():
            raise ReportError(f"notebook {path}: no such file")
        return path
    candidate = notebooks_dir() / f"{notebook}.ipynb"
    if not candidate.is_file():
        raise ReportError(f"notebook {notebook!r}: not found in {notebooks_dir()} "
                          f"(expected one of {', '.join(NOTEBOOKS)} or a .ipynb path)")
    return candidate


def execute_notebook(
    notebook: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    timeout: float | None = 600.0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Execute ``notebook`` with papermill into ``output`` (an .ipynb path); return it.

    ``parameters`` replace the defaults of the cell tagged ``parameters``.
    ``timeout`` bounds each cell (seconds). Raises :class:`ReportError` if a
    cell fails; the partly executed notebook is still written to ``output``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, output = notebook_path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(f"executing {source.name} -> {output}")
    try:
        with _kernel_can_import_streambench():
            papermill.execute_notebook(
                str(source), str(output), parameters=dict(parameters or {}),
                kernel_name="python3", progress_bar=False, cwd=str(output.parent),
                execution_timeout=timeout, report_mode=False,
            )  # fmt: skip
    except PapermillExecutionError as exc:
        raise ReportError(f"notebook {source.name}: cell In[{exc.exec_count}] failed: "
                          f"{exc.ename}: {_first_line(exc.evalue)} (see {output})") from exc
    return output


def to_html(
    executed: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    show_code: bool = False,
    title: str | None = None,
) -> Path:
    """Render an executed notebook to one self-contained HTML file; return its path.

    Code cells show only their outputs unless ``show_code``; the parameter
    cells are dropped then too. ``output`` defaults to the notebook's path with
    ``.html``. The page loads nothing from the network.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    executed = Path(executed)
    html_path = Path(output) if output is not None else executed.with_suffix(".html")
    nb = nbformat.read(executed, as_version=4)
    nb.metadata.pop("widgets", None)  # live widget state needs a CDN manager: not in reports
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="streambench", extra_template_basedirs=[str(TEMPLATES)])
    exporter.exclude_input = not show_code
    exporter.exclude_input_prompt = not show_code
    exporter.exclude_output_prompt = True
    if not show_code:
        remove = TagRemovePreprocessor(remove_cell_tags={"parameters", "injected-parameters"})
        exporter.register_preprocessor(remove, enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def render_report(
    run_id: str | None,
    *,
    out: str | os.PathLike[str],
    notebook: str | os.PathLike[str] = "scenario_report",
    store: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    show_code: bool = False,
    stem: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Execute ``notebook`` for ``run_id`` and render it into ``out``; return the HTML path.

    ``store`` is passed to the notebook as an absolute root (None:
    ``$STREAMBENCH_STORE`` or ``./data`` resolved here, in the caller's working
    directory; with no ``run_id`` either, the notebook makes its example run
    in a temporary store). ``parameters`` adds or overrides notebook
    parameters. Files: ``<out>/<stem>.ipynb`` and ``<out>/<stem>.html`` where
    ``stem`` defaults to ``<notebook>-<run id>``.
    """
    from streambench.capture.store import store_root

    name = Path(notebook).stem
    root = None if store is None and run_id is None else _absolute(
        store_root(None if store is None else os.fspath(store)))  # fmt: skip
    params: dict[str, Any] = {"run_id": run_id, "store": root}
    params.update(parameters or {})
    stem = stem or safe_name(f"{name}-{run_id}" if run_id else name)
    out = Path(out)
    executed = execute_notebook(notebook, output=out / f"{stem}.ipynb", parameters=params, log=log)
    if log is not None:
        log(f"rendering {executed.name} -> {stem}.html")
    return to_html(executed, output=out / f"{stem}.html", show_code=show_code,
                   title=f"{name} {run_id or ''}".strip())


def safe_name(text: str) -> str:
    """``text`` made safe as a file name (letters, digits, ``._-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "report"


def _absolute(root: str) -> str:
    """Local store roots become absolute (the kernel runs elsewhere); URLs stay."""
    return root if "://" in root else str(Path(root).resolve())


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


@contextmanager
def _kernel_can_import_streambench() -> Iterator[None]:
    """Put this streambench's parent directory first on the kernel's PYTHONPATH.

    The kernel inherits this process's environment; the change is undone on exit.
    """
    previous = os.environ.get("PYTHONPATH")
    parts = [str(_PACKAGE_PARENT), *(previous.split(os.pathsep) if previous else [])]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
