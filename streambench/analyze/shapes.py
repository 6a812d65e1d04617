"""Payload schema fingerprints ("shapes"), computed fast enough for big runs.

A shape is the sorted set of JSON keys of a reply payload, joined by commas
(``"cid,seq,text"``), or ``<non-json>`` when the payload is not an object.

Stripping the values of five million payloads with a regex costs seconds, so
:func:`prepare` takes a fast path: the first replies give the run's dominant
*skeleton* (the payload with values removed, keys in order); one anchored regex
then confirms, per row, that a payload has exactly that skeleton with scalar
values, and only the rows that do not (new field sets, nested values,
non-JSON) are stripped and fingerprinted one by one. The result is exact either
way; only the cost differs.
"""

from __future__ import annotations

import re

import polars as pl

NON_JSON = "<non-json>"
_STRING = r'"(?:[^"\\]|\\.)*"'
# A key's ':' and its scalar value; containers are kept, so nested keys stay visible.
_VALUE = r":\s*(?:" + _STRING + r"|[^,}\]{\[]*)"
_SCALAR = r"(?:" + _STRING + r'|[^,{}\[\]"]*)'
_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')
_FLAT = re.compile(r'\{(?:"(?:[^"\\]|\\.)*":,)*"(?:[^"\\]|\\.)*":\}')
_SAMPLE = 20_000


def skeleton_expr(payload: pl.Expr) -> pl.Expr:
    """The payload without scalar values (``{"cid":,"seq":,"text":}``), or ``<non-json>``."""
    stripped = payload.str.replace_all(_VALUE, ":")
    return (
        pl.when(payload.is_null())
        .then(pl.lit(None, pl.String))
        .when(payload.str.starts_with("{"))
        .then(stripped)
        .otherwise(pl.lit(NON_JSON))
    )


def fields_of(skeleton: str) -> str:
    """A skeleton's fingerprint: its distinct keys, sorted, comma-joined."""
    if skeleton == NON_JSON:
        return NON_JSON
    return ",".join(sorted(set(_KEY.findall(skeleton))))


def dominant_skeleton(events: pl.LazyFrame) -> str | None:
    """The most common skeleton among the first replies, if it is a flat object."""
    sample = (
        events.filter(pl.col("kind") == "recv", pl.col("payload").is_not_null())
        .select(skeleton_expr(pl.col("payload")).alias("skeleton"))
        .head(_SAMPLE)
        .collect()
    )
    if sample.height == 0:
        return None
    top = sample["skeleton"].value_counts(sort=True)["skeleton"][0]
    return top if _FLAT.fullmatch(top) else None


def _conform_pattern(skeleton: str) -> str:
    fields = [pl.escape_regex(f'"{key}"') + r"\s*:\s*" + _SCALAR for key in _KEY.findall(skeleton)]
    return r"^\{\s*" + r"\s*,\s*".join(fields) + r"\s*\}$"


def split_shapes(frame: pl.DataFrame, skeleton: str | None
                 ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Take the reply payloads (column ``_payload``: null except on the replies to
    fingerprint) out of ``frame``: the frame without them, the ``at`` of the
    replies with the dominant field set, and ``at`` and ``shape`` of every other
    one (each odd payload stripped and fingerprinted).

    The regex runs once over the payloads gathered in one chunk: compiled per
    chunk of a scan, a pattern this size costs more than matching.
    """
    empty = pl.DataFrame(schema={"at": pl.Int64, "shape": pl.String})
    if "_payload" not in frame.columns:
        return frame, empty.select("at"), empty
    replies = frame.select("at", "_payload").filter(pl.col("_payload").is_not_null()).rechunk()
    frame = frame.drop("_payload")
    if skeleton is None:
        conform = pl.Series([False] * replies.height, dtype=pl.Boolean)
    else:
        conform = replies["_payload"].str.contains(_conform_pattern(skeleton))
    plain = replies.filter(conform).select("at")
    payload = pl.col("_payload")
    unclosed = payload.str.starts_with("{") & ~payload.str.strip_chars_end().str.ends_with("}")
    odd = replies.filter(~conform).select(
        "at", skeleton=pl.when(unclosed).then(pl.lit(NON_JSON)).otherwise(skeleton_expr(payload)))
    mapping = {s: fields_of(s) for s in odd["skeleton"].unique().to_list()}
    odd = odd.select("at", shape=pl.col("skeleton").replace_strict(mapping,
                                                                   return_dtype=pl.String))
    return frame, plain, odd
