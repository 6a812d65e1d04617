"""Per-run locks that keep store mutations safe under concurrency (local stores).

One lock file per run, ``<store>/.locks/<run_id>.lock``, taken with
``flock(2)``:

============================  ==========  ==========================================
who                           mode        held while
============================  ==========  ==========================================
a capture writer              shared      it writes one part and renames it into place
compaction                    exclusive   it swaps a partition's parts for the new file
``forget``                    exclusive   it rewrites one part of the run
``prune``                     exclusive   it deletes one expired partition of the run
============================  ==========  ==========================================

Writers never wait for each other; a mutation waits for the parts being
written and holds writers off only for its short critical section, so no
reader and no writer ever sees a half-done mutation and two mutations never
lose each other's update. The kernel releases a lock when its holder dies
(``kill -9``), so a crash never leaves a store locked. An object store (S3)
has no locks: there, ``forget`` and ``prune`` are refused and compaction
relies on parts being immutable (see docs/operations.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from streambench.capture.files import StoreFiles
from streambench.capture.names import check_run_id

LOCK_DIR = ".locks"


class RunLocks:
    """Lock files of the runs of one store."""

    def __init__(self, files: StoreFiles) -> None:
        self.files = files

    @property
    def enabled(self) -> bool:
        return self.files.local

    def path(self, run_id: str) -> str:
        return f"{self.files.root}/{LOCK_DIR}/{check_run_id(run_id)}.lock"

    @contextlib.contextmanager
    def shared(self, run_id: str) -> Iterator[None]:
        """Held by a writer around one part (many writers at once)."""
        with self._locked(run_id, fcntl.LOCK_SH, wait=True):
            yield

    @contextlib.contextmanager
    def exclusive(self, run_id: str, name: str = "") -> Iterator[None]:
        """Held by one mutation at a time, with no writer in the middle of a part.

        ``name`` picks another lock of the run: ``.compact`` is held by a
        compaction for its whole length (``forget`` waits for it).
        """
        with self._locked(run_id, fcntl.LOCK_EX, wait=True, name=name):
            yield

    def try_exclusive(self, run_id: str, name: str = "") -> contextlib.AbstractContextManager[bool]:
        """Non-blocking exclusive lock on ``<run_id><name>.lock``: yields False if held."""
        return self._locked(run_id, fcntl.LOCK_EX, wait=False, name=name)

    @contextlib.contextmanager
    def _locked(self, run_id: str, operation: int, *, wait: bool,
                name: str = "") -> Iterator[bool]:
        if not self.enabled:
            yield True
            return
        path = self.path(run_id).removesuffix(".lock") + f"{name}.lock"
        self.files.makedirs(path.rsplit("/", 1)[0])
        fd = self.files.open_fd(path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, operation | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock
