"""Redaction of captured events before they touch disk.

The policy (scenario ``capture.redaction``) is deny by default: in a JSON
payload, ``allow`` paths are kept with the free text inside them scanned and
masked (:mod:`streambench.capture.pii`), ``hash`` paths are replaced by a keyed
hash (:mod:`streambench.capture.keys`), the correlation id and sequence fields
are kept as they are, and everything else is dropped. Paths are names joined by
``.``; lists are walked through, so ``items[].sku`` and ``items.sku`` mean the
same. Fields whose value is null are dropped. A payload that is not a JSON
object or array is scanned as free text, and so are the ``error``, ``topic`` and
``status`` columns. ``run_id``, ``kind``, ``protocol`` and ``cid`` are never
touched.

Interface used by the capture writer (call from one thread at a time)::

    redactor = Redactor(policy, cid_field="cid", seq_field="seq")
    table = redactor.redact_table(table)   # at flush time, EVENT_SCHEMA columns
    redactor.counts                         # {rule: count}, cumulative, for the manifest

Speed: JSON objects are decoded by polars' NDJSON reader with a schema that
holds only the policy's paths (types taken from a sample of the batch), so
field selection runs in Rust; strings are masked column-wise, hashes computed
once per distinct value. Rows the fast path cannot read (a type that differs
from the sample, invalid JSON, several lines) are isolated by bisection and
walked in Python.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from streambench.capture.keys import Hasher, KeyProvider, load_key_provider, period_ids
from streambench.capture.pii import Scanner
from streambench.errors import ConfigError
from streambench.scenario.model import Redaction

TEXT_COLUMNS = ("error", "topic", "status")
_SAMPLE_ROWS = 256
_MIN_BISECT = 32
_DECODE_ERRORS = (Exception, pl.exceptions.PanicException)


class Redactor:
    """Applies one redaction policy to batches of events; counts what it did."""

    def __init__(
        self,
        policy: Redaction,
        *,
        cid_field: str | None = "cid",
        seq_field: str | None = "seq",
        keep: Sequence[str] = (),
        key_provider: KeyProvider | None = None,
    ) -> None:
        self.policy = policy
        self.tree: Node = parse_policy(policy, cid_field=cid_field, seq_field=seq_field,
                                       keep=keep)
        provider = key_provider or load_key_provider(key_file=policy.key_file)
        if policy.hash and provider is None:
            raise ConfigError(
                "capture.redaction.hash lists fields but no hash key is available: run "
                "`streambench keys init`, or set $STREAMBENCH_HASH_KEY or "
                "capture.redaction.key_file"
            )
        self.hasher = Hasher(provider) if provider is not None else None
        self.scanner = Scanner()
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def counts(self) -> Mapping[str, int]:
        """What was redacted so far, by rule: a copy, safe to read from any thread."""
        with self._lock:
            return dict(self._counts)

    def redact_table(self, table: pa.Table) -> pa.Table:
        """Return ``table`` with ``payload``, ``error``, ``topic`` and ``status`` redacted
        (columns that are absent are skipped); schema and row order are unchanged."""
        counts: Counter[str] = Counter()
        for name in ("payload", *TEXT_COLUMNS):
            if name not in table.column_names:
                continue
            column = table.column(name)
            if name == "payload":
                new = self._payloads(column, self._periods(table), counts)
            else:
                new = self._short_text(column, counts)
            index = table.schema.get_field_index(name)
            field = table.schema.field(index)
            table = table.set_column(index, field, new.cast(field.type))
        if self.hasher is not None:
            counts["hash_key_destroyed"] += self.hasher.destroyed
            self.hasher.destroyed = 0
        with self._lock:
            self._counts.update(+counts)
        return table

    def redact_payloads(self, payloads: Sequence[str | None], *, ts: datetime | None = None
                        ) -> list[str | None]:
        """Redact loose payload strings as if captured at ``ts`` (default now)."""
        when = pa.array([ts or datetime.now(UTC)] * len(payloads), pa.timestamp("ns", "UTC"))
        table = pa.table({"ts": when, "payload": pa.array(payloads, pa.string())})
        return self.redact_table(table).column("payload").to_pylist()

    # -- columns -------------------------------------------------------------
    def _periods(self, table: pa.Table) -> pa.Array:
        if not self.policy.hash:
            return pa.nulls(table.num_rows, pa.string())
        if "ts" in table.column_names:
            ts = table.column("ts")
        else:
            ts = pa.array([datetime.now(UTC)] * table.num_rows, pa.timestamp("ns", "UTC"))
        return period_ids(ts, self.policy.rotation)

    def _short_text(self, column: pa.ChunkedArray, counts: Counter[str]) -> pa.Array:
        """Scan a low-cardinality column once per distinct value."""
        encoded = column.combine_chunks().dictionary_encode()
        masked = self._scan(encoded.dictionary, counts)
        return masked.take(encoded.indices)

    def _scan(self, values: pa.Array, counts: Counter[str]) -> pa.Array:
        series, found = self.scanner.mask(pl.from_arrow(values).cast(pl.String))  # type: ignore[union-attr]
        counts.update(found)
        return series.to_arrow(compat_level=pl.CompatLevel.oldest())

    def _payloads(self, column: pa.ChunkedArray, periods: pa.Array, counts: Counter[str]
                  ) -> pa.Array:
        text = pl.Series(column.combine_chunks()).cast(pl.String)
        head = text.str.slice(0, 1)
        multiline = text.str.contains("\n", literal=True) | text.str.contains("\r", literal=True)
        is_object = ((head == "{") & ~multiline).fill_null(False)
        maybe_json = head.is_in(["{", "[", " ", "\t", "\n", "\r"]).fill_null(False)
        out = text.clone()
        fast_rows, slow_rows = self._json_fast(text, is_object.arg_true(), periods, counts, out)
        slow_rows = pl.concat([slow_rows, (maybe_json & ~is_object).arg_true()])
        not_json = self._json_slow(text, slow_rows, periods, counts, out)
        counts["json_filtered"] += fast_rows + len(slow_rows) - len(not_json)
        text_rows = pl.concat([not_json, (~maybe_json & text.is_not_null()).arg_true()])
        if len(text_rows):
            masked, found = self.scanner.mask(text.gather(text_rows))
            counts.update(found)
            out.scatter(text_rows, masked)
        counts["text_scanned"] += len(text_rows)
        return out.to_arrow(compat_level=pl.CompatLevel.oldest())

    # -- JSON, fast path -----------------------------------------------------
    def _json_fast(self, text: pl.Series, rows: pl.Series, periods: pa.Array,
                   counts: Counter[str], out: pl.Series) -> tuple[int, pl.Series]:
        """Redact the rows that polars can decode with a sampled schema, writing
        into ``out``; return how many it did and the rows left for the slow path."""
        if not len(rows):
            return 0, rows
        lines = text.gather(rows)
        try:
            plan = plan_for(_sample(lines), self.tree)
        except Unfit:
            return 0, rows
        schema = {name: sub.dtype for name, sub in plan.fields.items()}
        strip = null_key_patterns(plan.dtype)
        done, failed, spans = 0, [], [(0, len(lines))]
        while spans:
            lo, hi = spans.pop()
            frame = _read_ndjson(lines.slice(lo, hi - lo), schema)
            if frame is None:
                if hi - lo <= _MIN_BISECT:
                    failed.append(rows.slice(lo, hi - lo))
                else:
                    spans += [((lo + hi) // 2, hi), (lo, (lo + hi) // 2)]
                continue
            where = rows.slice(lo, hi - lo)
            encoded = self._encode(frame, plan, periods.take(where.to_arrow()), counts, strip)
            out.scatter(where, encoded)
            done += hi - lo
        return done, pl.concat([rows.clear(), *failed])

    def _encode(self, frame: pl.DataFrame, plan: Plan, periods: pa.Array,
                counts: Counter[str], strip: list[tuple[str, str]]) -> pl.Series:
        table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
        root = pa.StructArray.from_arrays(
            [c.combine_chunks() for c in table.columns], names=table.column_names
        )
        redacted = plan.apply(root, periods=periods, scan=lambda a: self._scan(a, counts),
                              hash_=self._hash_counted(counts))
        encoded = pl.Series(redacted).struct.json_encode()
        has_null = encoded.str.contains(":null", literal=True)
        if strip and has_null.any():
            idx = has_null.arg_true()
            cleaned = encoded.gather(idx)
            for pattern, repl in strip:
                cleaned = cleaned.str.replace_all(pattern, repl)
            encoded = encoded.scatter(idx, cleaned)
        return encoded

    def _hash_counted(self, counts: Counter[str]):  # type: ignore[no-untyped-def]
        def hash_(values: pa.Array, periods: pa.Array) -> pa.Array:
            assert self.hasher is not None  # construction checked hash paths need a key
            counts["hashed"] += len(values) - values.null_count
            return self.hasher.hash_array(values, periods)

        return hash_

    # -- JSON, slow path -----------------------------------------------------
    def _json_slow(self, text: pl.Series, rows: pl.Series, periods: pa.Array,
                   counts: Counter[str], out: pl.Series) -> pl.Series:
        """Walk rows in Python; return the rows that are not JSON after all."""
        if not len(rows):
            return rows
        docs, ok, not_json = [], [], []
        slots = Slots()
        for row, raw in zip(rows.to_list(), text.gather(rows).to_list(), strict=True):
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                doc = None
            if not isinstance(doc, dict | list):
                not_json.append(row)  # a bare scalar is text like any other
                continue
            docs.append(walk(doc, self.tree, period=periods[row].as_py(), slots=slots))
            ok.append(row)
        if slots.texts:
            masked = self._scan(pa.array(slots.texts, pa.string()), counts)
            slots.set_texts(masked.to_pylist())
        if slots.hash_values:
            hashed = self._hash_counted(counts)(
                pa.array(slots.hash_values, pa.string()), pa.array(slots.hash_periods, pa.string())
            )
            slots.set_hashes(hashed.to_pylist())
        encoded = [orjson.dumps(fill(doc)).decode() for doc in docs]
        if ok:
            out.scatter(ok, pl.Series(encoded, dtype=pl.String))
        return pl.Series(not_json, dtype=rows.dtype)


def _sample(lines: pl.Series) -> list[object]:
    step = max(1, len(lines) // _SAMPLE_ROWS)
    docs = []
    for raw in lines.gather_every(step).head(_SAMPLE_ROWS).to_list():
        try:
            docs.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    return [d for d in docs if isinstance(d, dict)]


def _read_ndjson(lines: pl.Series, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
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


# -- the policy as a tree of field names ---------------------------------------
@dataclass
class Node:
    """One field name of the policy: ``action`` is mask (allow), hash, keep (cid and
    seq) or None (only some of its children are kept)."""

    action: str | None = None
    children: dict[str, Node] = field(default_factory=dict)


def parse_policy(policy: Redaction, *, cid_field: str | None, seq_field: str | None,
                 keep: Sequence[str] = ()) -> Node:
    """The policy's paths as a tree; hash wins over allow, keep over both.

    ``keep``: more paths kept as they are (ids where a conversation carries them,
    such as ``data.request_id``); a dotted ``cid_field`` is a path too.
    """
    root = Node()
    for action, paths in (("mask", policy.allow), ("hash", policy.hash)):
        for path in paths:
            node = root
            for name in split_path(path):
                node = node.children.setdefault(name, Node())
            node.action = action
    for path in (cid_field, seq_field, *keep):
        if path is None:
            continue
        node = root
        for name in path.split("."):
            node = node.children.setdefault(name, Node())
        node.action, node.children = "keep", {}
    return root


def split_path(path: str) -> list[str]:
    """``"items[].sku"`` -> ``["items", "sku"]``; ConfigError naming a bad path."""
    names = []
    for segment in path.split("."):
        name = segment.removesuffix("[]")
        if segment == "[]":
            continue
        if not name or "[" in name or "]" in name:
            names = []
            break
        names.append(name)
    if not names:
        raise ConfigError(f"capture.redaction: bad field path {path!r} "
                          "(expected names joined by '.', a list as 'name[]')")
    return names


# -- JSON fast path: a typed plan from a sample --------------------------------
class Unfit(Exception):
    """The sampled documents do not fit one schema: use the slow path."""


@dataclass
class Plan:
    """What to do with one decoded column: keep, mask, hash, struct or list."""

    op: str
    dtype: Any
    fields: dict[str, Plan] = field(default_factory=dict)
    inner: Plan | None = None

    def apply(self, arr: pa.Array, *, periods: pa.Array, scan: Callable[[pa.Array], pa.Array],
              hash_: Callable[[pa.Array, pa.Array], pa.Array]) -> pa.Array:
        if self.op == "keep":
            return arr
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
    if action in ("keep", "mask"):
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
    if kinds == {dict}:
        names = dict.fromkeys(k for v in values if v for k in v)
        if not names:
            raise Unfit
        return pl.Struct({k: _infer([v.get(k) for v in values if v]) for k in names})
    raise Unfit


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


# -- JSON slow path: a walk in Python --------------------------------------------
_DROP = object()


class _Slot:
    """A string waiting for its masked or hashed value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: str | None = None


class Slots:
    """Strings collected over a batch of documents, processed column-wise."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.hash_values: list[str] = []
        self.hash_periods: list[str] = []
        self._texts: list[_Slot] = []
        self._hashes: list[_Slot] = []

    def text(self, value: str) -> _Slot:
        self.texts.append(value)
        self._texts.append(slot := _Slot())
        return slot

    def hash(self, value: Any, period: str) -> _Slot | None:
        if value is None:
            return None
        if not isinstance(value, str):
            value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        self.hash_values.append(value)
        self.hash_periods.append(period)
        self._hashes.append(slot := _Slot())
        return slot

    def set_texts(self, values: list[str | None]) -> None:
        for slot, value in zip(self._texts, values, strict=True):
            slot.value = value

    def set_hashes(self, values: list[str | None]) -> None:
        for slot, value in zip(self._hashes, values, strict=True):
            slot.value = value


def walk(value: Any, node: Node | None, *, period: str, slots: Slots, mode: str | None = None
         ) -> Any:
    """Apply the policy to one decoded document; strings become slots to fill."""
    action = node.action if node is not None and node.action else mode
    if action == "keep":
        return value
    if isinstance(value, list):
        items = (walk(v, node, period=period, slots=slots, mode=mode) for v in value)
        return [v for v in items if v is not _DROP]
    if action == "hash":
        return slots.hash(value, period)
    if isinstance(value, dict):
        inherit = "mask" if action == "mask" else None
        out = {}
        for key, item in value.items():
            child = node.children.get(key) if node is not None else None
            if child is None and inherit is None:
                continue
            result = walk(item, child, period=period, slots=slots, mode=inherit)
            if result is not _DROP and result is not None:
                out[key] = result
        return out
    if action == "mask":
        return slots.text(value) if isinstance(value, str) else value
    return _DROP


def fill(value: Any) -> Any:
    """Replace slots by their values; members whose value ended up null are dropped."""
    if isinstance(value, _Slot):
        return value.value
    if isinstance(value, list):
        return [fill(v) for v in value]
    if isinstance(value, dict):
        out = {k: fill(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    return value
