"""Compaction records: how a store without atomic directory swaps stays consistent.

On S3 (or a local file system that cannot swap directories) compaction
cannot replace many files in one step, so it leaves a small record first,
``<root>/.compaction/<run_id>.<token>.json``::

    {"table": "events", "partition": "date=2026-11-03", "run_id": "...",
     "files": ["compacted-....parquet"], "replaces": ["part-00001.parquet", ...]}

and only then uploads the new file, deletes the replaced ones and deletes the
record. :meth:`Store.parts` applies every record it finds:

* all of its ``files`` are present: the new file is complete, its ``replaces``
  are hidden (even while they are being deleted);
* otherwise the new file is not (fully) there: its ``files`` are hidden.

So a reader through the store sees the old parts or the new file, never both
and never neither, and a crash at any step loses nothing: the next compaction
of the run finishes (all files present) or rolls back (not) what a record
describes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from streambench.capture.names import is_run_id

DIRECTORY = ".compaction"


@dataclass(frozen=True)
class Record:
    """One compaction of one partition in flight."""

    table: str
    partition: str  # "date=YYYY-MM-DD"
    run_id: str
    files: tuple[str, ...]
    replaces: tuple[str, ...]
    token: str = ""
    host: str = ""
    pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def folder(self, store: Any) -> str:
        return str(store.join(self.table, self.partition, f"run_id={self.run_id}"))

    def path(self, store: Any) -> str:
        return str(store.join(DIRECTORY, f"{self.run_id}.{self.token}.json"))

    def encode(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()


def read_records(store: Any, run_id: str | None = None) -> list[tuple[str, Record]]:
    """(path, record) of every compaction record in the store (of one run if given)."""
    found = []
    for name, is_dir in store.files.listdir(store.join(DIRECTORY)):
        if is_dir or not name.endswith(".json") or name.startswith("."):
            continue
        if run_id is not None and not name.startswith(f"{run_id}."):
            continue
        path = store.join(DIRECTORY, name)
        try:
            doc = json.loads(store.fs.cat_file(path))
            record = Record(**{**doc, "files": tuple(doc["files"]),
                               "replaces": tuple(doc["replaces"])})
        except (FileNotFoundError, ValueError, TypeError, KeyError):
            continue  # deleted since listed, or not ours
        if is_run_id(record.run_id):
            found.append((path, record))
    return found


def hidden_files(store: Any, table: str) -> set[str]:
    """Paths :meth:`Store.parts` must not show, by the rules in the module docstring."""
    hidden: set[str] = set()
    for _, record in read_records(store):
        if record.table != table:
            continue
        folder = record.folder(store)
        present = {name for name, is_dir in store.files.listdir(folder) if not is_dir}
        if all(name in present for name in record.files):
            hidden.update(f"{folder}/{name}" for name in record.replaces)
        else:
            hidden.update(f"{folder}/{name}" for name in record.files)
    return hidden
