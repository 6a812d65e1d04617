"""Redaction of captured events before they touch disk.

The policy (scenario ``capture.redaction``) is deny by default: in a JSON
payload, ``allow`` paths are kept with the free text inside them scanned and
masked (:mod:`streambench.capture.pii`), ``hash`` paths are replaced by a keyed
hash (:mod:`streambench.capture.keys`), the correlation id and sequence fields
are kept (scanned like allowed text: a server chooses what its replies carry
there; a kept string holding JSON members, a request echoed into a cid, is
redacted as a payload of its own), and everything else is dropped. Paths are
names joined by ``.``; lists are walked through, so ``items[].sku`` and
``items.sku`` mean the same. Fields whose value is null are dropped.

Redaction is total: a payload that is not a JSON object or array (plain text,
a JSON fragment, bytes after the JSON, a bare number) is kept only as its kind
and length, ``<text:N>`` or ``<invalid-json:N>``, and a document nested deeper
than :data:`~streambench.capture.redact_walk.MAX_DEPTH` as ``<deep-json:N>``
(N in characters). Every other column a server controls passes redaction too:
``error``, ``topic`` and ``status`` are scanned as free text (a value holding
JSON members, such as a close reason echoing a request, is redacted as a
payload), and so is a ``cid`` that streambench did not make (ours are
``<conn>-<seq>``). Every string kept has the process's known secrets and
credential-shaped text removed first (:mod:`streambench.scrub`).

Interface used by the capture writer (call from one thread at a time)::

    redactor = Redactor(policy, cid_field="cid", seq_field="seq")
    table = redactor.redact_table(table)   # at flush time, EVENT_SCHEMA columns
    redactor.counts                         # {rule: count}, cumulative, for the manifest

Speed: JSON objects go through the fast path (:mod:`.redact_fast`); rows it
cannot read exactly (a type that differs from the sample, several lines, a top
level array) are isolated by bisection and walked in Python
(:mod:`.redact_walk`), and counted as ``slow_path`` in the manifest.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import orjson
import polars as pl
import pyarrow as pa

from streambench.capture.keys import Hasher, KeyProvider, load_key_provider, period_ids
from streambench.capture.pii import Scanner
from streambench.capture.redact_fast import (
    Plan,
    Unfit,
    coerced,
    null_key_patterns,
    plan_for,
    read_ndjson,
    sample,
)
from streambench.capture.redact_walk import (
    DROP,
    MAX_DEPTH,
    Node,
    Slots,
    fill,
    parse_policy,
    split_path,
    walk,
)
from streambench.errors import ConfigError
from streambench.limits import json_depth
from streambench.scenario.model import Redaction
from streambench.scrub import SHAPE_HINTS, known_values, scrub

__all__ = ["MAX_DEPTH", "OWN_CID", "Redactor", "own_cids", "split_path"]

TEXT_COLUMNS = ("error", "topic", "status")
# The correlation ids streambench makes, <conn>-<seq>, up to 13 characters. No
# scanner can match one: 12 digits or fewer (a card has 13+), one dash, no
# leading zero (national phone numbers start with 0), no letters, dots, colons
# or "+". So they skip the scanners: the same result, without scanning every cid.
OWN_CID = r"^(?:0|[1-9][0-9]{0,11})-(?:0|[1-9][0-9]{0,11})$"
_OWN_CID_BYTES = 13
_MASKED = r"^<(?:text|invalid-json|deep-json):[0-9]+>$"
# JSON members inside free text ("key": value): structured data echoed back.
_MEMBERS = r'"[^"\n]{0,64}"\s*:\s*["{\[0-9tfn-]'
_MIN_BISECT = 32
# kept_text tries the distinct values of a field first when it has at least
# _FEW_MIN_ROWS rows and at most one distinct value in _FEW_SHARE.
_FEW_MIN_ROWS = 64
_FEW_SHARE = 4
_CID_CHARS = re.compile(r"[0-9-]+")  # a secret of these could hide in one of our cids


def own_cids(values: pl.Series) -> pl.Series:
    """True where a value is a correlation id streambench makes (:data:`OWN_CID`)."""
    own = values.str.contains(OWN_CID) & (values.str.len_bytes() <= _OWN_CID_BYTES)
    return own.fill_null(False)


class Redactor:
    """Applies one redaction policy to batches of events; counts what it did.

    ``fast_path=False`` walks every JSON payload in Python: the reference the
    fast path is tested against (slower; the rows are the same).
    """

    def __init__(
        self,
        policy: Redaction,
        *,
        cid_field: str | None = "cid",
        seq_field: str | None = "seq",
        keep: Sequence[str] = (),
        key_provider: KeyProvider | None = None,
        fast_path: bool = True,
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
        self.fast_path = fast_path
        self._counts: Counter[str] = Counter()
        self._nesting = 0  # kept_text inside kept_text: a payload echoed in a string
        self._lock = threading.Lock()

    @property
    def counts(self) -> Mapping[str, int]:
        """What was redacted so far, by rule: a copy, safe to read from any thread."""
        with self._lock:
            return dict(self._counts)

    def redact_table(self, table: pa.Table) -> pa.Table:
        """Return ``table`` with ``payload``, ``error``, ``topic``, ``status`` and
        ``cid`` redacted (columns that are absent are skipped); schema and row order
        are unchanged."""
        counts: Counter[str] = Counter()
        periods = self._periods(table)
        for name in ("payload", "cid", *TEXT_COLUMNS):
            if name not in table.column_names or table.column(name).null_count == table.num_rows:
                continue  # absent, or nothing in it (payloads not captured; no errors)
            text = pl.Series(table.column(name).combine_chunks()).cast(pl.String)
            if name == "payload":
                new = self._payloads(text, periods, counts)
            else:
                new = self._server_text(text, periods, counts, own=name == "cid")
            index = table.schema.get_field_index(name)
            field = table.schema.field(index)
            arrow = new.to_arrow(compat_level=pl.CompatLevel.oldest())
            table = table.set_column(index, field, arrow.cast(field.type))
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
        redacted: list[str | None] = self.redact_table(table).column("payload").to_pylist()
        return redacted

    # -- columns -------------------------------------------------------------
    def _periods(self, table: pa.Table) -> pa.Array:
        if not self.policy.hash:
            return pa.nulls(table.num_rows, pa.string())
        if "ts" in table.column_names:
            ts = table.column("ts")
        else:
            ts = pa.array([datetime.now(UTC)] * table.num_rows, pa.timestamp("ns", "UTC"))
        return period_ids(ts, self.policy.rotation)

    def _server_text(self, text: pl.Series, periods: pa.Array, counts: Counter[str], *,
                     own: bool) -> pl.Series:
        """Free text a server may have chosen: scanned once per distinct value; values
        holding JSON members are redacted as payloads; with ``own``, our cids are kept."""
        rows = text.is_not_null()
        if own:
            rows &= ~own_cids(text)
        rows = rows.fill_null(False).arg_true()
        if not len(rows):
            return text
        values = text.gather(rows)
        firsts = values.arg_unique()  # one scan per distinct value
        distinct = values.gather(firsts)
        new = self.scan(distinct, counts)
        structured = (distinct.str.contains(_MEMBERS) | distinct.str.contains(r"^\s*[\[{]"))
        picked = structured.fill_null(False).arg_true()
        if len(picked):
            first_rows = rows.gather(firsts.gather(picked)).to_arrow()
            as_payload = self._payloads(distinct.gather(picked), periods.take(first_rows), counts)
            new = new.scatter(picked, as_payload)
        if new.equals(distinct):  # the usual case (a topic, a status): nothing to write back
            return text
        return text.scatter(rows, values.replace_strict(distinct, new, return_dtype=pl.String))

    def scan(self, values: pl.Series, counts: Counter[str]) -> pl.Series:
        """Known secrets and credential shapes removed, then PII masked (:class:`Scanner`)."""
        values = values.cast(pl.String)
        patterns = [*known_values(), *SHAPE_HINTS]
        hits = values.str.contains_any(patterns, ascii_case_insensitive=True)
        rows = hits.fill_null(False).arg_true()
        if len(rows):
            before = values.gather(rows)
            after = pl.Series([scrub(v) for v in before.to_list()], dtype=pl.String)
            counts["secret"] += int(after.ne_missing(before).sum())
            values = values.scatter(rows, after)
        rows = (~own_cids(values)).arg_true()
        if len(rows) == len(values):
            masked, found = self.scanner.mask(values)
        else:
            masked, found = self.scanner.mask(values.gather(rows))
            masked = values.scatter(rows, masked)
        counts.update(found)
        return masked

    def kept_text(self, values: pl.Series, counts: Counter[str]) -> pl.Series:
        """Strings a payload keeps (allowed fields, the cid and seq fields): scanned, and
        one holding JSON members (a server echoing a request into its reply's cid) is
        redacted as a payload of its own; nested again, it is kept as ``<deep-json:N>``.

        A field of few distinct values (a body pool's text, in every message and every
        echo) is tried on those first: when none of them changes or counts anything,
        neither does any row, and the rows are not scanned one by one.
        """
        if own_cids(values).all() and not any(_CID_CHARS.fullmatch(v) for v in known_values()):
            return values  # all our cids: only a secret of digits could be in one
        if len(values) >= _FEW_MIN_ROWS:
            distinct = values.unique()
            if len(distinct) * _FEW_SHARE <= len(values):
                trial: Counter[str] = Counter()
                if self._kept_text(distinct, trial).equals(distinct) and not +trial:
                    return values
        return self._kept_text(values, counts)

    def _kept_text(self, values: pl.Series, counts: Counter[str]) -> pl.Series:
        out = self.scan(values, counts)
        rows = out.str.contains(_MEMBERS).fill_null(False).arg_true()
        if not len(rows):
            return out
        if self._nesting:
            self._mask(out, rows, "deep-json", counts)
            return out
        now = pa.array([datetime.now(UTC)] * len(rows), pa.timestamp("ns", "UTC"))
        self._nesting += 1
        try:
            inner = self._payloads(out.gather(rows), self._periods(pa.table({"ts": now})),
                                   counts)
        finally:
            self._nesting -= 1
        return out.scatter(rows, inner)

    def _scan_arrow(self, values: pa.Array, counts: Counter[str]) -> pa.Array:
        series = self.kept_text(pl.from_arrow(values), counts)  # type: ignore[arg-type]
        return series.to_arrow(compat_level=pl.CompatLevel.oldest())

    def _payloads(self, text: pl.Series, periods: pa.Array, counts: Counter[str]) -> pl.Series:
        """JSON documents through the policy; anything else kept as kind and length."""
        out = text.clone()
        head = text.str.strip_chars_start().str.slice(0, 1)
        kept = text.is_null() | (text == "") | text.str.contains(_MASKED)
        json_like = (head.is_in(["{", "["]) & ~kept).fill_null(False)
        self._mask(out, (~json_like & ~kept).fill_null(False).arg_true(), "text", counts)
        deep = json_like & (text.str.count_matches(r"[\[{]") > MAX_DEPTH).fill_null(False)
        too_deep = [row for row in deep.arg_true().to_list()
                    if json_depth(text[row]) > MAX_DEPTH]
        self._mask(out, pl.Series(too_deep, dtype=pl.UInt32), "deep-json", counts)
        json_like = json_like.scatter(too_deep, False) if too_deep else json_like
        multiline = text.str.contains("\n", literal=True) | text.str.contains("\r", literal=True)
        is_object = (json_like & (head == "{") & (text.str.slice(0, 1) == "{")
                     & ~multiline.fill_null(False))
        fast_rows, slow_rows = 0, is_object.arg_true()
        if self.fast_path:
            fast_rows, slow_rows = self._json_fast(text, slow_rows, periods, counts, out)
        slow_rows = pl.concat([slow_rows, (json_like & ~is_object).arg_true()])
        not_json = self._json_slow(text, slow_rows, periods, counts, out)
        counts["slow_path"] += len(slow_rows) - len(not_json)
        counts["json_filtered"] += fast_rows + len(slow_rows) - len(not_json)
        self._mask(out, not_json, "invalid-json", counts)
        return out

    def _mask(self, out: pl.Series, rows: pl.Series, kind: str, counts: Counter[str]) -> None:
        """Replace ``rows`` of ``out`` by ``<kind:length>`` (in place)."""
        if not len(rows):
            return
        lengths = out.gather(rows).str.len_chars().cast(pl.String)
        out.scatter(rows, f"<{kind}:" + lengths + ">")
        counts[kind.replace("-", "_")] += len(rows)

    # -- JSON, fast path -----------------------------------------------------
    def _json_fast(self, text: pl.Series, rows: pl.Series, periods: pa.Array,
                   counts: Counter[str], out: pl.Series) -> tuple[int, pl.Series]:
        """Redact the rows that polars can decode with a sampled schema, writing
        into ``out``; return how many it did and the rows left for the slow path."""
        if not len(rows):
            return 0, rows
        lines = text.gather(rows)
        try:
            plan = plan_for(sample(lines), self.tree)
        except Unfit:
            return 0, rows
        schema = {name: sub.dtype for name, sub in plan.fields.items()}
        strip = null_key_patterns(plan.dtype)
        done, failed, spans = 0, [], [(0, len(lines))]
        while spans:
            lo, hi = spans.pop()
            frame = read_ndjson(lines.slice(lo, hi - lo), schema)
            if frame is None:
                if hi - lo <= _MIN_BISECT:
                    failed.append(rows.slice(lo, hi - lo))
                else:
                    spans += [((lo + hi) // 2, hi), (lo, (lo + hi) // 2)]
                continue
            where = rows.slice(lo, hi - lo)
            suspect = coerced(frame)
            if suspect.any():
                failed.append(where.filter(suspect))
                frame, where = frame.filter(~suspect), where.filter(~suspect)
            if not len(where):
                continue
            encoded = self._encode(frame, plan, periods.take(where.to_arrow()), counts, strip)
            out.scatter(where, encoded)
            done += len(where)
        return done, pl.concat([rows.clear(), *failed])

    def _encode(self, frame: pl.DataFrame, plan: Plan, periods: pa.Array,
                counts: Counter[str], strip: list[tuple[str, str]]) -> pl.Series:
        table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
        root = pa.StructArray.from_arrays(
            [c.combine_chunks() for c in table.columns], names=table.column_names
        )
        redacted = plan.apply(root, periods=periods, scan=lambda a: self._scan_arrow(a, counts),
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
            kept = walk(doc, self.tree, period=periods[row].as_py(), slots=slots)
            docs.append(type(doc)() if kept is DROP else kept)
            ok.append(row)
        if slots.texts:
            masked = self.kept_text(pl.Series(slots.texts, dtype=pl.String), counts)
            slots.set_texts(masked.to_list())
        if slots.hash_values:
            hashed = self._hash_counted(counts)(
                pa.array(slots.hash_values, pa.string()), pa.array(slots.hash_periods, pa.string())
            )
            slots.set_hashes(hashed.to_pylist())
        encoded = [orjson.dumps(fill(doc)).decode() for doc in docs]
        if ok:
            out.scatter(ok, pl.Series(encoded, dtype=pl.String))
        return pl.Series(not_json, dtype=rows.dtype)
