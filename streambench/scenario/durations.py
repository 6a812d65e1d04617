"""Durations in scenarios: ``500ms``, ``30s``, ``5m``, ``2h``, ``1h30m`` or a bare number
of seconds, parsed into float seconds."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# "1h30m", "2m30s", "1s500ms": whole-number parts, largest unit first
_COMPOUND = re.compile(r"^\s*(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?\s*$")
_LONG_UNITS = {  # words people write, for the "did you mean" hint
    "ms": ("msec", "msecs", "millis", "millisecond", "milliseconds"),
    "s": ("sec", "secs", "second", "seconds"),
    "m": ("min", "mins", "minute", "minutes"),
    "h": ("hr", "hrs", "hour", "hours"),
}
_EXPECTED_DURATION = "expected a duration such as 500ms, 30s, 5m, 2h or 1h30m"


def parse_duration(value: Any) -> float:
    """``"500ms"`` -> 0.5, ``"5m"`` -> 300.0, ``"1h30m"`` -> 5400.0, ``2`` -> 2.0 (seconds)."""
    if isinstance(value, bool):
        raise ValueError(f"{_EXPECTED_DURATION}, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a duration >= 0, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        compound = _COMPOUND.match(value)
        if compound and any(compound.groups()):
            h, m, s, ms = (int(part or 0) for part in compound.groups())
            return h * 3600.0 + m * 60.0 + s + ms / 1000
        raise ValueError(f"{_EXPECTED_DURATION}, got {value!r}{_duration_hint(value)}")
    raise ValueError(f"{_EXPECTED_DURATION}, got {value!r}")


def _duration_hint(text: str) -> str:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$", text)
    if match:
        number, word = match.group(1), match.group(2).lower()
        for unit, words in _LONG_UNITS.items():
            if word in words or word == unit:
                return f"; did you mean {number}{unit}?"
    return ""


Duration = Annotated[float, BeforeValidator(parse_duration)]
