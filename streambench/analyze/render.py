"""Aligned, readable text tables for the analysis commands (no logic, only layout)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any


def _float(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{value:g}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


def fmt(value: Any) -> str:
    """Numbers with sensible precision, times as ISO 8601, None as '-'."""
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = _float(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, datetime):
        text = value.isoformat().replace("+00:00", "Z")
    elif isinstance(value, list | tuple):
        text = ", ".join(fmt(v) for v in value)
    else:
        text = str(value)
    return text


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """``columns`` is ``[(key, header), ...]``; numbers right-aligned, text left-aligned."""
    cells = [[fmt(row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in cells) and bool(cells) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def key_values(pairs: Mapping[str, Any]) -> str:
    """Two aligned columns: name and value."""
    width = max((len(k) for k in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {fmt(v)}" for k, v in pairs.items())


def _numeric(text: str) -> bool:
    if text == "-":
        return True
    stripped = text.replace(",", "").replace("%", "").lstrip("+-")
    return stripped.replace(".", "", 1).replace("e", "", 1).isdigit()
