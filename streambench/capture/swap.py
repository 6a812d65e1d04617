"""Swap two directories in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

After ``exchange(a, b)`` the entry ``a`` names what ``b`` named and the other
way round; no process ever sees either name missing or half-filled. That is
what lets compaction replace a partition's many small parts by one large file
for every reader at once, including engines that glob the Hive layout
themselves, as long as they fail on a listed file that is gone (polars does;
pyarrow's and DuckDB's directory discovery skip it: docs/operations.md). Both
paths must be on one file
system. Where the call is missing (not Linux, an old kernel, a file system
without support) :func:`exchange` raises :class:`ExchangeUnsupported` and
compaction falls back to its commit-record protocol (see compact.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import sys
from typing import Any

AT_FDCWD = -100
RENAME_EXCHANGE = 1 << 1


class ExchangeUnsupported(OSError):
    """This system or file system cannot swap two directories atomically."""


@functools.cache
def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    function = getattr(libc, "renameat2", None)
    if function is None:  # glibc < 2.28
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(first: str, second: str) -> None:
    """Atomically swap the directory entries ``first`` and ``second`` (both must exist)."""
    function = _renameat2()
    if function is None:
        raise ExchangeUnsupported(errno.ENOSYS, "renameat2 is not available here")
    result = function(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second),
                      RENAME_EXCHANGE)
    if result == 0:
        return
    number = ctypes.get_errno()
    if number in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        raise ExchangeUnsupported(number, os.strerror(number), first)
    raise OSError(number, os.strerror(number), first, None, second)
