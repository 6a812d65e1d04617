"""One compaction of a run at a time.

Locally a non-blocking ``flock`` on ``.locks/<run_id>.compact.lock`` (released
by the kernel if the holder dies). On an object store, a lease object
``.compaction/<run_id>.lease`` created with a conditional PUT, holding the
host, pid and time of its holder; a lease whose holder is gone from this
host, or older than :data:`LEASE_SECONDS`, is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from streambench.capture.catalog import alive
from streambench.capture.commits import DIRECTORY
from streambench.errors import StoreError

LEASE_SECONDS = 3600.0


@contextlib.contextmanager
def compaction_guard(store: Any, run_id: str) -> Iterator[None]:
    """Hold the right to compact ``run_id``; StoreError if another process holds it."""
    if store.local:
        with store.locks.try_exclusive(run_id, ".compact") as got:
            if not got:
                raise StoreError(f"store {store.root}: run {run_id} is being compacted "
                                 "or erased by another process; try again when it is done")
            yield
        return
    path = store.join(DIRECTORY, f"{run_id}.lease")
    lease = {"host": socket.gethostname(), "pid": os.getpid(),
             "at": dt.datetime.now(dt.UTC).isoformat()}
    store.files.makedirs(store.join(DIRECTORY))
    if not store.files.create_exclusive(path, json.dumps(lease).encode()):
        held = _read(store, path)
        if not _expired(held):
            raise StoreError(f"store {store.root}: run {run_id} is being compacted by pid "
                             f"{held.get('pid')} on {held.get('host')}")
        store.files.write_atomic(path, json.dumps(lease).encode())
    try:
        yield
    finally:
        store.files.remove(path)


def _read(store: Any, path: str) -> dict[str, Any]:
    try:
        doc = json.loads(store.fs.cat_file(path))
    except (FileNotFoundError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _expired(lease: dict[str, Any]) -> bool:
    if not lease:
        return True
    pid = lease.get("pid")
    if lease.get("host") == socket.gethostname() and isinstance(pid, int) and not alive(pid):
        return True
    try:
        at = dt.datetime.fromisoformat(str(lease.get("at")))
    except ValueError:
        return True
    return (dt.datetime.now(dt.UTC) - at).total_seconds() > LEASE_SECONDS
