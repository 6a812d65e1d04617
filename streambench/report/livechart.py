"""Small line charts for the live dashboard, drawn as SVG text in pure Python.

The dashboard redraws three charts about once a second; building them here
costs well under a millisecond each (a Vega-Lite render is ~100 ms), so a
refresh never competes for CPU with the run it shows. Every series has a
label a person reads ("p99", "received/s"), the y axis names its unit, and
the legend sits above the plot, wrapping rather than being cut off.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

COLORS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#b279a2")
FONT = "font-family:sans-serif;font-size:11px"
Scale = Callable[[float], float]  # data value -> pixel


@dataclass(frozen=True)
class Frame:
    """The chart's geometry in pixels."""

    width: int = 420
    height: int = 190
    left: int = 52
    right: int = 12
    top: int = 44  # title and legend
    bottom: int = 30  # x ticks and title

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks: list[float] = []
    value = first
    while value <= high + step * 1e-9 and len(ticks) < 3 * count:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def label(value: float) -> str:
    """A tick label: 1.5k, 250, 0.25."""
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value / 1000:.0f}k"
    if magnitude >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if magnitude >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2g}"


def line_chart(x: Sequence[float], series: Mapping[str, Sequence[float | None]], *,
               title: str, unit: str, x_title: str = "seconds into the run",
               frame: Frame | None = None) -> str:
    """An SVG line chart: one line per ``series`` (label -> values aligned with ``x``).

    ``None`` values leave a gap. The y axis starts at zero.
    """
    f = frame or Frame()
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    if not x or not values:
        return _empty(title, f)
    x_ticks = nice_ticks(min(x), max(x) if max(x) > min(x) else min(x) + 1)
    y_ticks = nice_ticks(0.0, max(values) or 1.0)
    x0, x1, y1 = x_ticks[0], x_ticks[-1], y_ticks[-1]

    def px(value: float) -> float:
        return f.left + (value - x0) / ((x1 - x0) or 1.0) * f.plot_w

    def py(value: float) -> float:
        return f.top + f.plot_h - value / (y1 or 1.0) * f.plot_h

    parts = [_axes(f, x_ticks, y_ticks, px, py, unit=unit, x_title=x_title)]
    for color, (name, ys) in zip(COLORS, series.items(), strict=False):
        points = [(px(a), None if b is None else py(b)) for a, b in zip(x, ys, strict=True)]
        parts.append(_line(points, color, name))
    parts.append(_legend(f, title, list(series)))
    return _svg(f, "".join(parts))


def _axes(f: Frame, x_ticks: list[float], y_ticks: list[float], px: Scale, py: Scale, *,
          unit: str, x_title: str) -> str:
    out = []
    for tick in y_ticks:
        y = py(tick)
        out.append(f"<line x1='{f.left}' x2='{f.left + f.plot_w}' y1='{y:.1f}' y2='{y:.1f}' "
                   "stroke='#e6e6e6'/>")
        out.append(f"<text x='{f.left - 4}' y='{y + 4:.1f}' text-anchor='end' style='{FONT}'>"
                   f"{label(tick)}</text>")
    for tick in x_ticks:
        x = px(tick)
        out.append(f"<text x='{x:.1f}' y='{f.top + f.plot_h + 13}' text-anchor='middle' "
                   f"style='{FONT}'>{label(tick)}</text>")
    bottom = f.top + f.plot_h
    out.append(f"<line x1='{f.left}' x2='{f.left + f.plot_w}' y1='{bottom}' y2='{bottom}' "
               "stroke='#888'/>")
    out.append(f"<text x='{f.left + f.plot_w / 2:.0f}' y='{f.height - 3}' text-anchor='middle' "
               f"style='{FONT};fill:#555'>{html.escape(x_title)}</text>")
    middle = f.top + f.plot_h / 2
    out.append(f"<text transform='translate(12,{middle:.0f}) rotate(-90)' text-anchor='middle' "
               f"style='{FONT};fill:#555'>{html.escape(unit)}</text>")
    return "".join(out)


def _line(points: list[tuple[float, float | None]], color: str, name: str) -> str:
    """A polyline per unbroken run of points, a dot on each point."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None or not math.isfinite(y):
            runs.append([])
        else:
            runs[-1].append((x, y))
    out = [f"<g><title>{html.escape(name)}</title>"]
    for run in (r for r in runs if r):
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
        out.append(f"<polyline points='{coords}' fill='none' stroke='{color}' "
                   "stroke-width='1.6'/>")
        out.extend(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='1.8' fill='{color}'/>"
                   for x, y in run[-60:])
    out.append("</g>")
    return "".join(out)


def _legend(f: Frame, title: str, names: list[str]) -> str:
    """The title, then a swatch and label per series, wrapping to a second row."""
    out = [f"<text x='{f.left}' y='14' style='font-family:sans-serif;font-size:13px;"
           f"font-weight:bold'>{html.escape(title)}</text>"]
    x, y = f.left, 30
    for color, name in zip(COLORS, names, strict=False):
        width = 18 + 6.5 * len(name) + 12
        if x + width > f.width - f.right and x > f.left:
            x, y = f.left, y + 13
        out.append(f"<rect x='{x}' y='{y - 8}' width='12' height='4' fill='{color}'/>"
                   f"<text x='{x + 16}' y='{y - 3}' style='{FONT}'>{html.escape(name)}</text>")
        x += int(width)
    return "".join(out)


def _empty(title: str, f: Frame) -> str:
    body = (f"<text x='{f.left}' y='14' style='font-family:sans-serif;font-size:13px;"
            f"font-weight:bold'>{html.escape(title)}</text>"
            f"<text x='{f.width / 2:.0f}' y='{f.height / 2:.0f}' text-anchor='middle' "
            f"style='{FONT};fill:#888'>waiting for data</text>")
    return _svg(f, body)


def _svg(f: Frame, body: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{f.width}' height='{f.height}' "
            f"viewBox='0 0 {f.width} {f.height}'>{body}</svg>")
