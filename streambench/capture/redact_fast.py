"""The redaction fast path: a typed plan from a sample, applied column-wise.

A batch's JSON objects are decoded by polars' NDJSON reader with a schema that
holds only the policy's paths (:func:`plan_for` takes the types from a sample
of the batch), so field selection runs in Rust; :meth:`Plan.apply` then masks
strings column-wise and hashes each distinct value once. It must give exactly
the rows :func:`streambench.capture.redact_walk.walk` gives: a row it cannot
decode the same way is handed back to that slow path, never guessed at.

Polars reads whatever it is given into the schema's type where it can: an
object read into a text field comes out as text (``'{"b": 1}'``), a whole
number read into a float field as ``1.0``. :func:`coerced` finds the rows where
that may have happened so they go to the slow path too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from streambench.capture.redact_walk import Node

SAMPLE_ROWS = 256
_DECODE_ERRORS = (Exception, pl.exceptions.PanicException)


class Unfit(Exception):
    """The sampled documents do not fit one schema: use the slow path."""


@dataclass
class Plan:
    """What to do with one decoded column: mask, hash, struct or list."""

    op: str
    dtype: Any
    fields: dict[str, Plan] = field(default_factory=dict)
    inner: Plan | None = None

    def apply(self, arr: pa.Array, *, periods: pa.Array, scan: Callable[[pa.Array], pa.Array],
              hash_: Callable[[pa.Array, pa.Array], pa.Array]) -> pa.Array:
        if self.op == "hash":
            return hash_(arr, periods)
        if self.op == "mask":
            return _mask_all(arr, scan)
        if self.op == "list":
            inner = self.inner
            assert inner is not None
            return _map_list(arr, lambda values, parents: inner.apply(
                values, periods=periods.take(parents), scan=scan, hash_=hash_))
        new = [self.fields[f.name].apply(child, periods=periods, scan=scan, hash_=hash_)
               for f, child in zip(arr.type, arr.flatten(), strict=True)]
        return pa.StructArray.from_arrays(new, names=[f.name for f in arr.type],
                                          mask=_null_mask(arr))


def sample(lines: pl.Series) -> list[object]:
    """Up to :data:`SAMPLE_ROWS` decoded objects spread over ``lines``."""
    step = max(1, len(lines) // SAMPLE_ROWS)
    docs = []
    for raw in lines.gather_every(step).head(SAMPLE_ROWS).to_list():
        try:
            docs.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return [d for d in docs if isinstance(d, dict)]


def read_ndjson(lines: pl.Series, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    """Decode one JSON object per line with ``schema``; None if any line does not fit."""
    arr = (lines + "\n").to_arrow(compat_level=pl.CompatLevel.oldest())
    offsets = memoryview(arr.buffers()[1]).cast("q")  # large_string: int64 offsets
    start, end = offsets[arr.offset], offsets[arr.offset + len(arr)]
    data = arr.buffers()[2][start:end].to_pybytes()
    try:
        frame = pl.read_ndjson(data, schema=schema)
    except _DECODE_ERRORS:
        return None
    return frame if frame.height == len(lines) else None


def plan_for(samples: list[object], tree: Node) -> Plan:
    plan = _plan(samples, tree, None)
    if plan is None or plan.op != "struct":
        raise Unfit
    return plan


def _plan(samples: list[Any], node: Node | None, mode: str | None) -> Plan | None:
    action = node.action if node is not None and node.action else mode
    present = [s for s in samples if s is not None]
    lists = [s for s in present if isinstance(s, list)]
    if lists and len(lists) != len(present):
        raise Unfit
    if action == "hash" and any(isinstance(s, dict) for s in present):
        raise Unfit  # hashed as canonical JSON by the slow path only
    if action == "hash" and not lists:
        return Plan("hash", pl.String)
    if action == "mask":
        return Plan(action, _infer(present))
    if lists:
        inner = _plan([x for s in lists for x in s], node, mode)
        return inner and Plan("list", pl.List(inner.dtype), inner=inner)
    dicts = [s for s in present if isinstance(s, dict)]
    if len(dicts) != len(present):
        if dicts:
            raise Unfit
        return None  # only scalars where the policy expects an object: all dropped
    assert node is not None
    names = [k for k in dict.fromkeys(k for d in dicts for k in d) if k in node.children]
    names += [k for k in node.children if k not in names]
    fields = {}
    for name in names:
        sub = _plan([d[name] for d in dicts if name in d], node.children[name], None)
        if sub is not None:
            fields[name] = sub
    if not fields:
        return None
    return Plan("struct", pl.Struct({n: p.dtype for n, p in fields.items()}), fields=fields)


def _infer(values: list[Any]) -> Any:
    """The polars type of a kept subtree, from sampled values."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds or kinds == {str}:
        return pl.String
    if kinds == {bool}:
        return pl.Boolean
    if kinds == {int}:
        return pl.Int64
    if kinds <= {int, float}:
        return pl.Float64
    if kinds == {list}:
        return pl.List(_infer([x for v in values if v for x in v]))
    # An allowed object's keys are data (scanned by the slow path): a sampled struct
    # would also silently drop keys the sample did not have.
    raise Unfit


def coerced(frame: pl.DataFrame) -> pl.Series:
    """Rows of a decoded ``frame`` that polars may have read into another type than
    the document had: text that reads as a number, a boolean, a list or an object
    (any of them read into a text field), whole floats (``1`` read into a float
    field writes ``1.0``) and nulls in a list of objects (the walk drops them)."""
    flags = [e for name, dtype in frame.schema.items()
             if (e := _suspect(pl.col(name), dtype)) is not None]
    if not flags:
        return pl.Series([False] * frame.height)
    return frame.select(pl.any_horizontal(flags).fill_null(False)).to_series()


# What polars writes when it reads a number, a boolean, a list or an object into text.
_NOT_TEXT = r"^(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false)$|^[\[{]"


def _suspect(expr: pl.Expr, dtype: Any) -> pl.Expr | None:
    if dtype == pl.String:
        return expr.str.contains(_NOT_TEXT).fill_null(False)
    if dtype == pl.Float64:
        return (expr == expr.round(0)).fill_null(False)
    if isinstance(dtype, pl.Struct):
        parts = [e for f in dtype.fields
                 if (e := _suspect(expr.struct.field(f.name), f.dtype)) is not None]
        return pl.any_horizontal(parts).fill_null(False) if parts else None
    if isinstance(dtype, pl.List):
        inner = _suspect(pl.element(), dtype.inner)
        if isinstance(dtype.inner, pl.Struct):  # the walk drops a null where it wants an object
            null = pl.element().is_null()
            inner = null if inner is None else (null | inner)
        return None if inner is None else expr.list.eval(inner).list.any().fill_null(False)
    return None


def _mask_all(arr: pa.Array, scan: Callable[[pa.Array], pa.Array]) -> pa.Array:
    kind = arr.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return scan(arr)
    if pa.types.is_struct(kind):
        new = [_mask_all(child, scan) for child in arr.flatten()]
        return pa.StructArray.from_arrays(new, names=[f.name for f in kind], mask=_null_mask(arr))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _map_list(arr, lambda values, _parents: _mask_all(values, scan))
    return arr


def _map_list(arr: pa.Array, fn: Callable[[pa.Array, pa.Array], pa.Array]) -> pa.Array:
    """Rebuild a list array after ``fn(values, parent_row_of_each_value)``."""
    new = fn(pc.list_flatten(arr), pc.list_parent_indices(arr))
    lengths = pc.fill_null(pc.list_value_length(arr), 0).cast(pa.int64())
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)])
    if pa.types.is_large_list(arr.type):
        return pa.LargeListArray.from_arrays(offsets, new, mask=_null_mask(arr))
    return pa.ListArray.from_arrays(offsets.cast(pa.int32()), new, mask=_null_mask(arr))


def _null_mask(arr: pa.Array) -> pa.Array | None:
    return arr.is_null() if arr.null_count else None


_RX_META = set("\\.+*?()|[]{}^$#&-~")


def null_key_patterns(dtype: Any) -> list[tuple[str, str]]:
    """Regex replacements that drop ``"name":null`` members from polars' JSON output
    (a field absent from a row decodes as null). A quote right after the name can
    only close a key, so the patterns cannot hit text inside a string value."""
    names: set[str] = set()
    _struct_names(dtype, names)
    plain = sorted(n for n in names if orjson.dumps(n).decode() == f'"{n}"')
    if not plain:
        return []
    alt = "|".join("".join("\\" + c if c in _RX_META else c for c in n) for n in plain)
    return [(f'"(?:{alt})":null,', ""), (f',"(?:{alt})":null\\}}', "}"),
            (f'\\{{"(?:{alt})":null\\}}', "{}")]


def _struct_names(dtype: Any, names: set[str]) -> None:
    if isinstance(dtype, pl.Struct):
        for f in dtype.fields:
            names.add(f.name)
            _struct_names(f.dtype, names)
    elif isinstance(dtype, pl.List):
        _struct_names(dtype.inner, names)
