"""Compaction: a run's small parts rewritten into a few large files, atomically.

Capture writes about one part per second per process; readers pay for every
file. :func:`compact_run` merges each partition's small files (merge.py) and
puts the result in place so that **a reader at any moment sees either the old
parts or the new file, never both and never neither, and a crash (kill -9) at
any step loses nothing**:

*Local store (Linux).* The new partition directory is built outside the Hive
tree, in ``<root>/.compaction/<run_id>.<token>/run_id=<id>/``: the merged file,
plus hard links of every file that is not merged. Then, holding the run's
exclusive lock (locks.py: no writer is half-way through a part, no ``forget``
or ``prune`` is at work), it checks the merged sources did not change, links
parts written meanwhile, and swaps the two directories with
``renameat2(RENAME_EXCHANGE)`` (swap.py): one atomic step for every reader
that opens what it listed (the store, polars globbing the layout; a read that
listed before the swap and opens after fails, never answers wrong; pyarrow's
and DuckDB's own directory discovery skip such files silently, see
docs/operations.md). The old directory,
now in ``.compaction/``, is deleted. A crash before the swap leaves only
``.compaction/`` debris; after it, only old files there; the next compaction
of the run (or ``prune``) deletes them.

*S3, or a file system that cannot swap directories.* A commit record
(commits.py) is written first, then the merged file, then the sources are
deleted, then the record. :meth:`Store.parts` hides what the record says, so
readers through the store see an atomic switch; an engine listing the
objects itself may see both for the moment between the upload and the
deletion (docs/operations.md). A crash is finished or rolled back by the next
compaction of the run.

One compaction of a run at a time (a lock locally, a lease object on S3).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from streambench.capture import commits
from streambench.capture.leases import compaction_guard
from streambench.capture.merge import TARGET_BYTES, Fingerprint, Merged, plan_groups, write_merged
from streambench.capture.names import check_run_id
from streambench.capture.swap import ExchangeUnsupported, exchange

TABLES = ("events", "faults", "health")
OnStep = Callable[[str], None] | None


@dataclass
class CompactionReport:
    """What one compaction of a run changed."""

    run_id: str
    partitions: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # partitions that changed meanwhile

    @property
    def files_before(self) -> int:
        return sum(p["files_before"] for p in self.partitions)

    @property
    def files_after(self) -> int:
        return sum(p["files_after"] for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "files_before": self.files_before,
                "files_after": self.files_after,
                "rows": sum(p["rows"] for p in self.partitions),
                "bytes": sum(p["bytes_after"] for p in self.partitions)}


def compact_run(store: Any, run_id: str, *, target_bytes: int = TARGET_BYTES,
                on_step: OnStep = None) -> CompactionReport:
    """Compact every partition of ``run_id`` (see the module docstring).

    Safe while the run writes. ``on_step(name)`` is called after each step
    (``merged``, ``committed``, ``swapped``, ``moved``, ``cleaned``: which of
    them depends on the protocol); tests use it to kill the process at a
    chosen point.
    """
    check_run_id(run_id)
    report = CompactionReport(run_id=run_id)
    with store.errors(f"compact run {run_id}"), compaction_guard(store, run_id):
        recover(store, run_id)
        for table in TABLES:
            for day in _days(store, table, run_id):
                done = _compact_partition(store, table, day, run_id,
                                          target_bytes=target_bytes, on_step=on_step)
                if done is None:
                    continue
                if done.get("skipped"):
                    report.skipped.append(f"{table}/{day}")
                else:
                    report.partitions.append(done)
    return report


def _days(store: Any, table: str, run_id: str) -> list[str]:
    return [day for day, is_dir in store.files.listdir(store.join(table))
            if is_dir and day.startswith("date=")
            and (f"run_id={run_id}", True) in store.files.listdir(store.join(table, day))]


@dataclass(frozen=True)
class _Job:
    """One partition being compacted."""

    store: Any
    table: str
    day: str  # "date=YYYY-MM-DD"
    run_id: str
    token: str
    on_step: OnStep

    @property
    def folder(self) -> str:
        return str(self.store.join(self.table, self.day, f"run_id={self.run_id}"))

    def step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def record(self, merged: list[Merged]) -> commits.Record:
        return commits.Record(table=self.table, partition=self.day, run_id=self.run_id,
                              files=tuple(m.name for m in merged),
                              replaces=tuple(n for m in merged for n in m.sources),
                              token=self.token, host=socket.gethostname(), pid=os.getpid())


def _compact_partition(store: Any, table: str, day: str, run_id: str, *, target_bytes: int,
                       on_step: OnStep) -> dict[str, Any] | None:
    job = _Job(store, table, day, run_id, _token(), on_step)
    before = fingerprints(store, job.folder)
    groups = plan_groups({n: f.size for n, f in before.items()}, target_bytes=target_bytes)
    if not groups:
        return None
    result = {"table": table, "date": day.removeprefix("date="), "files_before": len(before),
              "bytes_before": sum(f.size for f in before.values())}
    merged = _swap_local(job, groups, before) if store.local else _commit_remote(job, groups)
    if merged is None:
        return {"skipped": True}
    after = fingerprints(store, job.folder)
    return {**result, "files_after": len(after), "rows": sum(m.rows for m in merged),
            "merged": sum(len(m.sources) for m in merged),
            "bytes_after": sum(f.size for f in after.values())}


def _swap_local(job: _Job, groups: list[list[str]],
                before: dict[str, Fingerprint]) -> list[Merged] | None:
    store, folder = job.store, job.folder
    staging_root = store.join(commits.DIRECTORY, f"{job.run_id}.{job.token}")
    staging = f"{staging_root}/run_id={job.run_id}"
    store.files.makedirs(staging)
    try:
        merged = [write_merged(store, folder, g, f"{staging}/{_merged_name(job.token, i)}")
                  for i, g in enumerate(groups)]
        job.step("merged")
        with store.locks.exclusive(job.run_id):
            now = fingerprints(store, folder)
            sources = {n for m in merged for n in m.sources}
            if any(now.get(n) != before[n] for n in sources):
                return None  # forget, prune or a rewrite got there first: next time
            for name in sorted(set(now) - sources):
                os.link(f"{folder}/{name}", f"{staging}/{name}")
            try:
                exchange(staging, folder)
            except ExchangeUnsupported:
                return _commit_local(job, staging, merged)
        job.step("swapped")
        return merged
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        job.step("cleaned")


def _commit_local(job: _Job, staging: str, merged: list[Merged]) -> list[Merged]:
    """The record protocol on a local file system that cannot swap (lock already held)."""
    record = job.record(merged)
    job.store.files.write_atomic(record.path(job.store), record.encode())
    job.step("committed")
    for m in merged:
        os.replace(f"{staging}/{m.name}", f"{job.folder}/{m.name}")
    job.step("moved")  # new file and old parts both in the folder: the record hides the old
    _finish(job.store, record)
    return merged


def _commit_remote(job: _Job, groups: list[list[str]]) -> list[Merged]:
    names = [_merged_name(job.token, i) for i in range(len(groups))]
    record = job.record([Merged(name=n, sources=tuple(g), rows=0, bytes=0)
                         for n, g in zip(names, groups, strict=True)])
    job.store.files.write_atomic(record.path(job.store), record.encode())
    job.step("committed")
    merged = [write_merged(job.store, job.folder, g, f"{job.folder}/{n}")
              for g, n in zip(groups, names, strict=True)]
    job.step("merged")
    _finish(job.store, record)
    return merged


def _finish(store: Any, record: commits.Record) -> None:
    """Delete what a complete record replaces, then the record."""
    folder = record.folder(store)
    for name in record.replaces:
        store.files.remove(f"{folder}/{name}")
    store.files.remove(record.path(store))


def recover(store: Any, run_id: str) -> None:
    """Finish or roll back what a crashed compaction of ``run_id`` left (guard held)."""
    for name, is_dir in store.files.listdir(store.join(commits.DIRECTORY)):
        if is_dir and name.startswith(f"{run_id}.") and store.local:
            shutil.rmtree(store.join(commits.DIRECTORY, name), ignore_errors=True)
    for path, record in commits.read_records(store, run_id):
        folder = record.folder(store)
        present = {n for n, d in store.files.listdir(folder) if not d}
        with store.locks.exclusive(run_id):
            if all(n in present for n in record.files):
                _finish(store, record)
            else:  # the new file never arrived whole: keep the old parts
                for name in record.files:
                    store.files.remove(f"{folder}/{name}")
                store.files.remove(path)


def fingerprints(store: Any, folder: str) -> dict[str, Fingerprint]:
    """Visible data files of a partition folder and what they are now."""
    found = {}
    if store.local:
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if _is_data(entry.name) and entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[entry.name] = Fingerprint(st.st_size, (st.st_ino, st.st_mtime_ns))
        except FileNotFoundError:
            pass
        return found
    store.fs.invalidate_cache(folder)
    try:
        listing = store.fs.ls(folder, detail=True)
    except FileNotFoundError:
        return found
    for info in listing:
        name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
        if info["type"] == "file" and _is_data(name):
            found[name] = Fingerprint(int(info["size"]), info.get("ETag") or info.get("mtime"))
    return found


def _merged_name(token: str, index: int) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"compacted-{stamp}-{token}-{index}.parquet"


def _token() -> str:
    return secrets.token_hex(4)


def _is_data(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))
