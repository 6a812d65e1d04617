"""The one percentile definition: exact nearest rank, used everywhere a percentile is shown.

The q-quantile of n values is the value of rank ``ceil(q x n)`` (1-based, at
least 1) in ascending order: the smallest observed value with at least a
share q of the values at or below it. It is always a value that was
measured, never an interpolation between two. With ``[1, 2, 3, 4, 100]`` the
p90 is 100 (rank ``ceil(4.5) = 5``), where linear interpolation would say 61.6.

``q x n`` is rounded to 6 decimal places before the ceiling, so that floating
point cannot move a rank: ``0.07 x 100`` is ``7.000000000000001`` in binary,
and its rank is 7, not 8.

The run summary, live progress, metrics (run and per window), SLO verdicts,
comparisons and report tables all call this module; the engine imports it too
(it depends on numpy only; the polars helpers import polars when called).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

QUANTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
"""The percentiles every report shows, by the name they carry in summaries."""

_DECIMALS = 6


def rank(n: int, q: float) -> int:
    """The 1-based rank of the nearest-rank q-quantile of ``n`` values (0 when n is 0)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], not {q}")
    if n <= 0:
        return 0
    return min(max(math.ceil(round(q * n, _DECIMALS)), 1), n)


def nearest_rank(sorted_values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-quantile of values already in ascending order (None if there are none)."""
    n = len(sorted_values)
    return None if n == 0 else float(sorted_values[rank(n, q) - 1])


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-quantile of values in any order (None if there are none).

    Selects in linear time (``numpy.partition``) rather than sorting.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return None
    k = rank(array.size, q) - 1
    return float(np.partition(array, k)[k])


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Several q-quantiles of values in any order, with one partial sort."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return [None] * len(qs)
    ks = [rank(array.size, q) - 1 for q in qs]
    selected = np.partition(array, sorted(set(ks)))
    return [float(selected[k]) for k in ks]


def rank_expr(n: pl.Expr, q: float) -> pl.Expr:
    """:func:`rank` as a polars expression over a count expression ``n`` (0-based index)."""
    import polars as pl

    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], not {q}")
    index = (n.cast(pl.Float64) * q).round(_DECIMALS).ceil().cast(pl.Int64) - 1
    return index.clip(lower_bound=0)


def nearest_rank_expr(values: pl.Expr, q: float) -> pl.Expr:
    """The q-quantile of ``values`` as a polars expression (works in ``group_by().agg``
    and in the streaming engine). Nulls are ignored; null when there are no values.

    It is polars' ``equiprobable`` quantile (rank ``ceil(q x n)``, found by
    selection, no sort) asked for ``q`` less two units in the last place: then
    floating point can only err downwards, where the 6-decimal rounding of
    :func:`rank` puts it, so the result is exactly our rank (checked for every
    group size in the tests). ``q`` must have at most 6 decimal places.
    """
    if not 0.0 <= q <= 1.0 or round(q, _DECIMALS) != q:
        raise ValueError(f"quantile must be in [0, 1] with at most 6 decimals, not {q}")
    below = float(np.nextafter(np.nextafter(q, 0.0), 0.0)) if q > 0 else 0.0
    return values.quantile(below, "equiprobable")
