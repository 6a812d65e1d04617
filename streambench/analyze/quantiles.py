"""Exact percentiles of a whole run in bounded memory: count first, then pick.

Nearest rank (:mod:`streambench.stats`) needs the value of one rank among
every value of the run. Sorting hundreds of millions of latencies would need
them all in memory; instead two streaming passes over the store give the same
answer exactly:

1. count the values per bucket of 1/1024 of a unit (``floor(v x 1024)``:
   monotone, so buckets are ordered like the values), with their count, sum
   and maximum;
2. for each quantile find the bucket holding its rank, read only the values
   of those buckets, sort them and pick the rank inside.

Memory is the number of distinct buckets plus the values of the chosen ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from streambench.stats import rank

SCALE = 1024.0  # buckets per unit (per millisecond for latencies): ~1 microsecond wide


def _bucket() -> pl.Expr:
    return (pl.col("v") * SCALE).floor().cast(pl.Int64).alias("bucket")


@dataclass(frozen=True)
class Distribution:
    """The value counts of one or more runs: enough to find any rank exactly."""

    sources: tuple[pl.LazyFrame, ...]  # each with one Float64 column "v", nulls removed
    histogram: pl.DataFrame  # bucket, n (sorted by bucket)
    count: int
    total: float  # sum of the values (summed in no fixed order: the last bits may vary)
    maximum: float | None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @classmethod
    def pooled(cls, parts: Sequence[Distribution]) -> Distribution:
        """The distribution of the values of ``parts`` together."""
        histogram = pl.concat([p.histogram for p in parts]).group_by("bucket").agg(
            pl.col("n").sum()).sort("bucket")
        tops = [p.maximum for p in parts if p.maximum is not None]
        return cls(tuple(s for p in parts for s in p.sources), histogram,
                   sum(p.count for p in parts), sum(p.total for p in parts),
                   max(tops) if tops else None)  # fmt: skip

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """The nearest-rank q-quantiles (one more streaming pass, over the chosen buckets)."""
        if not self.count:
            return [None] * len(qs)
        ends = self.histogram["n"].cum_sum()
        wanted = {}
        for q in qs:
            k = rank(self.count, q)
            i = int(ends.search_sorted(k, side="left"))
            before = int(ends[i - 1]) if i else 0
            wanted[q] = (int(self.histogram["bucket"][i]), k - before)
        buckets = sorted({b for b, _ in wanted.values()})
        chosen = pl.col("bucket").is_in(buckets)
        picked = pl.collect_all([s.select(_bucket(), "v").filter(chosen) for s in self.sources],
                                engine="streaming")
        values = pl.concat(picked).sort("bucket", "v")
        starts = dict(values.group_by("bucket", maintain_order=True)
                      .agg(first=pl.len()).with_columns(pl.col("first").cum_sum() - pl.col("first"))
                      .iter_rows())  # fmt: skip
        column = values["v"]
        return [float(column[starts[b] + k - 1]) for b, k in (wanted[q] for q in qs)]


def _values(source: pl.LazyFrame | pl.DataFrame) -> Any:
    return source.select(pl.nth(0).cast(pl.Float64).alias("v")).drop_nulls().drop_nans()


def bucket_counts(values: pl.LazyFrame | pl.DataFrame) -> Any:
    """Per bucket of the first column's values: ``bucket``, ``n``, ``total``, ``top``
    (a LazyFrame for a LazyFrame: part of a :class:`Distribution`)."""
    return _values(values).group_by(_bucket()).agg(n=pl.len(), total=pl.col("v").sum(),
                                                  top=pl.col("v").max())  # fmt: skip


def distribution(sources: Sequence[pl.LazyFrame],
                 counts: Sequence[pl.DataFrame] | None = None) -> Distribution:  # fmt: skip
    """Count the values of ``sources`` (LazyFrames with one column, any name) per bucket,
    in one streaming pass; or take ``counts`` (:func:`bucket_counts` of the same
    values, in parts) already made while reading them for something else."""
    frames = tuple(_values(s) for s in sources)
    if counts is None:
        queries = [bucket_counts(f) for f in frames]
        counts = pl.collect_all(queries, engine="streaming") if queries else []
    parts = [c.cast({"bucket": pl.Int64, "n": pl.Int64}) for c in counts if c.height]
    pooled = pl.concat(parts) if parts else pl.DataFrame(
        schema={"bucket": pl.Int64, "n": pl.Int64, "total": pl.Float64, "top": pl.Float64})
    merged = pooled.group_by("bucket").agg(pl.col("n").sum().cast(pl.Int64), pl.col("total").sum(),
                                           pl.col("top").max()).sort("bucket")  # fmt: skip
    count = int(merged["n"].sum())
    top = merged["top"].max()
    return Distribution(frames, merged.select("bucket", "n"), count,
                        float(merged["total"].sum() or 0.0),
                        float(top) if isinstance(top, float | int) else None)


def exact_quantiles(sources: Sequence[pl.LazyFrame], qs: Sequence[float]) -> list[float | None]:
    """The nearest-rank q-quantiles of all values of ``sources`` together."""
    return distribution(sources).quantiles(qs)
