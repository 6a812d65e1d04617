"""Erasure: ``streambench forget`` removes one data subject's rows (local stores).

``forget`` hashes the raw id under the key of every period found in each run's
hashed values (the key file or ``$STREAMBENCH_HASH_KEY`` the run used;
destroyed periods cannot be searched, and their data is unlinkable anyway),
removes the rows whose payload carries one of those hashes, and rewrites each
affected file atomically. It refuses while any run is still being written
(its later parts could hold the subject again) and holds each run's locks
(locks.py), so two ``forget`` at once, or a compaction, never lose each
other's rows. It appends to the audit log (audit.py) with the subject only as
the hashes searched.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streambench.capture import audit
from streambench.capture.catalog import in_progress
from streambench.capture.keys import KeyProvider, hash_value, load_key_provider
from streambench.capture.merge import SOURCES_KEY
from streambench.errors import RunInProgress, StoreError

_HASH_PERIOD = r"h1:(?P<period>[0-9A-Za-z-]+):[0-9a-f]{16}"


@dataclass
class ForgetReport:
    """Rows removed for one subject, by run; the subject itself is not recorded."""

    rows_removed: dict[str, int] = field(default_factory=dict)
    parts_rewritten: int = 0
    parts_deleted: int = 0
    periods_searched: list[str] = field(default_factory=list)
    periods_without_key: list[str] = field(default_factory=list)
    runs_without_key: list[str] = field(default_factory=list)  # hashed, but no key here
    subject_hashes: set[str] = field(default_factory=set)  # what was searched, for the audit

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("subject_hashes")
        return found


def forget(store: Any, *, subject: str, audited: bool = True) -> ForgetReport:
    """Remove every event row whose hashed fields hold ``subject``; see module doc."""
    local_root(store, "forget")
    running = [m for m in store.runs() if in_progress(m)]
    if running:
        raise RunInProgress(store.root, running[0], doing="forget")
    report = ForgetReport()
    searched: set[str] = set()
    missing: set[str] = set()
    with store.errors("forget"):
        for run_id, provider in _providers(store).items():
            if provider is None:
                report.runs_without_key.append(run_id)
                continue
            removed = _forget_in_run(store, run_id, subject, provider, report=report,
                                     searched=searched, missing=missing)
            if removed:
                report.rows_removed[run_id] = removed
    report.periods_searched = sorted(searched)
    report.periods_without_key = sorted(missing)
    if audited:
        audit.record(store, "forget", arguments={"subject": subject}, changed={
            "runs": sorted(report.rows_removed), "partitions": 0,
            "files": report.parts_rewritten + report.parts_deleted,
            "rows": sum(report.rows_removed.values()), "bytes": 0},
            details={"subject_hashes": sorted(report.subject_hashes),
                     "periods_without_key": report.periods_without_key,
                     "runs_without_key": report.runs_without_key})
    return report


def _forget_in_run(store: Any, run_id: str, subject: str, provider: KeyProvider, *,
                   report: ForgetReport, searched: set[str], missing: set[str]) -> int:
    removed = 0
    # No compaction of this run while its files are read and rewritten one by one.
    with store.locks.exclusive(run_id, ".compact"):
        for path in store.parts("events", run_id):
            if os.path.islink(path):
                continue
            with store.locks.exclusive(run_id):
                removed += _forget_in_part(store, path, subject, provider, report=report,
                                           searched=searched, missing=missing)
    return removed


def local_root(store: Any, command: str) -> str:
    """The store's local path; StoreError for an object store (no locks there)."""
    if not getattr(store, "local", False):
        raise StoreError(f"store {store.root}: {command} works on local stores only")
    return str(store.path)


def _providers(store: Any) -> dict[str, KeyProvider | None]:
    """The key provider of each run that hashed something (readers never add keys)."""
    providers: dict[str, KeyProvider | None] = {}
    for manifest in store.runs():
        capture = (manifest.get("scenario") or {}).get("capture") or {}
        redaction = capture.get("redaction") or {} if isinstance(capture, dict) else {}
        if isinstance(redaction, dict) and redaction.get("hash"):
            key_file = redaction.get("key_file")
            providers[str(manifest["run_id"])] = load_key_provider(
                key_file=key_file if isinstance(key_file, str) else None,
                create_missing=False)
    return providers


def _forget_in_part(store: Any, path: str, subject: str, provider: KeyProvider | None, *,
                    report: ForgetReport, searched: set[str], missing: set[str]) -> int:
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        return 0  # deleted since listed (an earlier forget emptied it, or prune)
    if "payload" not in table.column_names or provider is None:
        return 0
    payload = table.column("payload").combine_chunks()
    periods = pc.unique(pc.struct_field(pc.extract_regex(payload, _HASH_PERIOD), [0]))
    periods = periods.drop_null()
    hit = pa.array([False] * table.num_rows)
    for period in periods.to_pylist():
        key = provider.key(period)
        if key is None:
            missing.add(period)
            continue
        searched.add(period)
        token = hash_value(key, period, subject)
        report.subject_hashes.add(token)
        hit = pc.or_(hit, pc.fill_null(pc.match_substring(payload, token), False))
    removed = pc.sum(hit).as_py() or 0
    if removed:
        _rewrite(store, path, table.filter(pc.invert(hit)), report)
    return int(removed)


def _rewrite(store: Any, path: str, kept: pa.Table, report: ForgetReport) -> None:
    """Replace a file atomically (temporary name, then rename); delete it if emptied."""
    if kept.num_rows == 0:
        os.unlink(path)
        report.parts_deleted += 1
        return
    metadata = {k: v for k, v in (kept.schema.metadata or {}).items() if k != SOURCES_KEY}
    with store.files.atomic(path) as f:  # its row lineage no longer holds: dropped
        pq.write_table(kept.replace_schema_metadata(metadata), f, compression="zstd")
    report.parts_rewritten += 1
