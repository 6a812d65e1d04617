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


def shape_columns(skeleton: str | None, payload: pl.Expr) -> list[pl.Expr]:
    """Columns for the slice's one collect, from ``payload`` (null except on the
    replies to fingerprint): ``_plain`` (has the dominant skeleton) and ``_odd``
    (the payload of any other reply). The regex only runs where ``payload`` is
    not null."""
    if skeleton is None:
        return [pl.lit(False).alias("_plain"), payload.alias("_odd")]
    conform = payload.str.contains(_conform_pattern(skeleton))
    return [conform.fill_null(False).alias("_plain"),
            pl.when(~conform).then(payload).alias("_odd")]  # fmt: skip


def split_shapes(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Take ``_plain``/``_odd`` out of ``frame``: the frame, the ``at`` of the
    replies with the dominant field set, and ``at`` and ``shape`` of every other
    one (each odd payload stripped and fingerprinted)."""
    empty = pl.DataFrame(schema={"at": pl.Int64, "shape": pl.String})
    if "_odd" not in frame.columns:
        return frame, empty.select("at"), empty
    plain = frame.filter("_plain").select("at")
    payload = pl.col("_odd")
    unclosed = payload.str.starts_with("{") & ~payload.str.strip_chars_end().str.ends_with("}")
    odd = frame.filter(payload.is_not_null()).select(
        "at", skeleton=pl.when(unclosed).then(pl.lit(NON_JSON)).otherwise(skeleton_expr(payload)))
    mapping = {s: fields_of(s) for s in odd["skeleton"].unique().to_list()}
    odd = odd.select("at", shape=pl.col("skeleton").replace_strict(mapping,
                                                                   return_dtype=pl.String))
    return frame.drop("_plain", "_odd"), plain, odd
