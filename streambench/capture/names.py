"""Names that become paths in the store: one pattern, checked at every entry.

A run id becomes a file name (``runs/<id>.json``) and a directory name
(``run_id=<id>``), so it is the one thing a user types that reaches the file
system. It must match :data:`RUN_ID_PATTERN`: a letter or digit, then letters,
digits, ``.``, ``_`` or ``-``, at most 200 characters. That rules out path
separators, ``..``, glob characters (``* ? [ ]``), ``=`` (Hive partition
syntax), spaces, control characters and absolute paths, whatever the platform.
``latest`` is reserved: it names the newest finished run.

Every entry checks it: the CLI's ``--run-id``, ``streambench.run(run_id=...)``,
every :class:`~streambench.capture.store.Store` method that takes a run id,
and every manifest read from ``runs/`` (a manifest whose ``run_id`` is not a
valid name, or not the file's own name, is skipped with a warning).
"""

from __future__ import annotations

import re

from streambench.errors import ConfigError

RUN_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
_RUN_ID = re.compile(RUN_ID_PATTERN)
RESERVED = frozenset({"latest"})


def is_run_id(value: object) -> bool:
    """True if ``value`` is a string a run may be called (no check of existence)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None and (
        value not in RESERVED)


def check_run_id(value: object, *, where: str = "run id") -> str:
    """``value`` if it is a valid run id, else ConfigError naming ``where``."""
    if is_run_id(value):
        return str(value)
    if value in RESERVED:
        raise ConfigError(f"{where}: {value!r} is reserved (it names the newest run)")
    shown = repr(value)[:80]
    raise ConfigError(f"{where}: {shown} is not a valid run id (expected a letter or digit, "
                      "then letters, digits, '.', '_' or '-', at most 200 characters)")
