"""Properties of the redactor over generated input: it never crashes, applying it
twice changes nothing, and no PII value from the corpus survives a trip to disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streambench.capture.keys import MasterKey
from streambench.capture.pii import Scanner
from streambench.capture.redact import Redactor, own_cids
from streambench.capture.schema import EVENT_SCHEMA
from streambench.scenario.model import Redaction
from tests.capture.pii_corpus import CONTEXTS, POSITIVES

NOV = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
POLICY = Redaction(allow=("text", "value", "device.model", "items[].sku", "notes"),
                   hash=("user_id", "device.id"))
KEYS = ("text", "value", "device", "model", "id", "items", "sku", "notes", "user_id",
        "email", "cid", "seq", "secret")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=30)
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5),
    max_leaves=20,
)
pii = st.sampled_from(POSITIVES).flatmap(
    lambda pair: st.sampled_from(CONTEXTS).map(lambda c: c.format(pair[1])))
filler = st.sampled_from(["", "hello", "order 12", "3-1042", "at 2026-11-03T12:30:45Z", "1.5"])
pii_text = st.lists(pii | filler, min_size=1, max_size=4).map(" ".join)


def events(payloads: list[str | None], *, error: list[str | None] | None = None,
           topic: list[str | None] | None = None) -> pa.Table:
    n = len(payloads)
    data = {"run_id": ["r"] * n, "ts": [NOV] * n, "kind": ["recv"] * n,
            "protocol": ["mqtt"] * n, "conn": [0] * n, "cid": ["0-1"] * n,
            "payload": payloads, "error": error or [None] * n, "topic": topic or [None] * n}
    return pa.table({f.name: pa.array(data.get(f.name, [None] * n), f.type)
                     for f in EVENT_SCHEMA}, schema=EVENT_SCHEMA)


def parsed(text: str | None) -> Any:
    try:
        return json.loads(text) if text and text[0] in "{[" else text
    except ValueError:
        return text


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


payloads = st.lists(
    st.none() | st.text(max_size=60) | json_values.map(dumps) | pii_text,
    min_size=1, max_size=30,
)


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(POLICY, key_provider=MasterKey(b"property-test-master-key"))


@SETTINGS
@given(payloads)
def test_no_input_crashes_the_redactor(redactor: Redactor, rows: list[str | None]):
    out = redactor.redact_table(events(rows, error=rows, topic=rows))
    assert out.schema == EVENT_SCHEMA
    assert out.num_rows == len(rows)
    nulls = [r is None for r in rows]
    assert [p is None for p in out.column("payload").to_pylist()] == nulls


@SETTINGS
@given(payloads)
def test_redaction_is_idempotent(redactor: Redactor, rows: list[str | None]):
    once = redactor.redact_table(events(rows, error=rows))
    twice = redactor.redact_table(once)
    for name in ("payload", "error"):
        first = [parsed(v) for v in once.column(name).to_pylist()]
        assert [parsed(v) for v in twice.column(name).to_pylist()] == first


def placed(value: str, where: str) -> str:
    """``value`` put somewhere a payload can carry it."""
    bodies = {
        "text": {"text": value, "cid": "1-1"},
        "denied": {"email": value, "text": "ok"},
        "hashed": {"user_id": value},
        "nested": {"device": {"model": value, "id": value, "serial": value}},
        "list": {"items": [{"sku": value}, {"sku": "x", "other": value}]},
        "deep": {"notes": {"a": [value, {"b": value}]}},
    }
    return value if where == "free" else json.dumps(bodies[where])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(pii_text, st.sampled_from(
    ["free", "text", "denied", "hashed", "nested", "list", "deep"])), min_size=1, max_size=20))
def test_no_corpus_value_survives_a_round_trip_to_disk(
    redactor: Redactor, tmp_path_factory: pytest.TempPathFactory, cases: list[tuple[str, str]]
):
    rows = [placed(text, where) for text, where in cases]
    table = redactor.redact_table(events(rows, error=[t for t, _ in cases],
                                         topic=[f"devices/{t}" for t, _ in cases]))
    path = Path(tmp_path_factory.mktemp("roundtrip")) / "part.parquet"
    pq.write_table(table, path)
    back = pq.read_table(path)
    stored = "\n".join(str(v) for column in back.columns for v in column.to_pylist())
    for _, value in POSITIVES:
        assert value not in stored


def canonical(text: str | None) -> str | None:
    """Key order aside, the exact JSON (``1`` and ``1.0`` differ); text as it is."""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):
        return text


documents = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), json_values, max_size=6)
batches = st.tuples(st.lists(documents, min_size=1, max_size=5),
                    st.lists(st.integers(0, 4), min_size=1, max_size=80))


@pytest.fixture(scope="module")
def both_paths() -> tuple[Redactor, Redactor]:
    key = MasterKey(b"property-test-master-key")
    return Redactor(POLICY, key_provider=key), Redactor(POLICY, key_provider=key, fast_path=False)


def redacted(redactor: Redactor, rows: list[str | None]) -> tuple[list[Any], dict[str, int]]:
    before = redactor.counts
    table = redactor.redact_table(events(rows, error=rows))
    counts = {k: v - before.get(k, 0) for k, v in redactor.counts.items()}
    columns = [[canonical(v) for v in table.column(name).to_pylist()]
               for name in ("payload", "error")]
    return columns, counts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.lists(pii_text | st.none(), min_size=1, max_size=3))
def test_fast_and_slow_paths_give_the_same_rows(both_paths: tuple[Redactor, Redactor],
                                                batch: tuple[list[dict[str, Any]], list[int]],
                                                extra: list[str | None]):
    """Mostly-alike documents (the fast path's case) with any types, nesting and
    text in any field; the Python walk is the reference."""
    shapes, picks = batch
    rows = [dumps(shapes[i % len(shapes)]) for i in picks] + extra
    fast, fast_counts = redacted(both_paths[0], rows)
    slow, slow_counts = redacted(both_paths[1], rows)
    assert fast == slow
    assert fast_counts.pop("slow_path", 0) <= slow_counts.pop("slow_path", 0)
    assert {k: v for k, v in fast_counts.items() if v} == \
        {k: v for k, v in slow_counts.items() if v}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12 - 1), st.integers(0, 10**12 - 1)),
                min_size=1, max_size=50))
def test_no_scanner_can_match_a_cid_streambench_makes(pairs: list[tuple[int, int]]):
    """Why our own cids may skip the scanners (OWN_CID): the result is the same."""
    cids = pl.Series([f"{conn}-{seq}" for conn, seq in pairs])
    own = own_cids(cids)
    masked, found = Scanner().mask(cids.filter(own))
    assert masked.to_list() == cids.filter(own).to_list()
    assert not found
    assert own.to_list() == [len(c) <= 13 for c in cids.to_list()]


def test_cids_that_look_like_ours_but_hold_pii_are_scanned():
    cids = pl.Series(["4111-111111111111", "0123-4567890", "415-555-0123", "12-34"])
    assert own_cids(cids).to_list() == [False, False, False, True]
