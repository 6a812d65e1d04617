"""Who may read a local store: its owner only, or its owner and one group.

New stores are private (files.py): directories 0700, files 0600. To share a
store with a team, ``streambench permissions --share-group GROUP`` gives the
root and everything in it to GROUP, directories 2770 (set-group-id, so new
folders keep the group) and files 0660; from then on every writer creates
new paths that way. ``streambench permissions --private`` takes it back.
Nothing is ever made readable by others. ``streambench doctor`` calls
:func:`exposure` to warn about an existing store that others can read (one
made by an older version, or by hand).
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from streambench.capture.files import PRIVATE, SHARED, Modes, modes_of_root
from streambench.errors import ConfigError, StoreError

SCAN_LIMIT = 200_000  # paths looked at by exposure(): enough for any real store


@dataclass
class Exposure:
    """Paths of a store readable beyond what its mode allows."""

    shared: bool
    count: int = 0
    examples: list[str] = field(default_factory=list)
    scanned: int = 0

    @property
    def ok(self) -> bool:
        return self.count == 0


def exposure(root: str, *, limit: int = SCAN_LIMIT) -> Exposure:
    """Which paths others can read (and the group too, unless the store is shared)."""
    shared = modes_of_root(root).shared
    mask = 0o007 if shared else 0o077
    found = Exposure(shared=shared)
    for path, mode in _walk(root, limit):
        found.scanned += 1
        if mode & mask:
            found.count += 1
            if len(found.examples) < 5:
                found.examples.append(f"{path} ({stat.filemode(mode)})")
    return found


def apply(root: str, *, group: str | None) -> dict[str, Any]:
    """Make a store private (``group`` None) or shared with ``group``; every path."""
    if not os.path.isdir(root):
        raise StoreError(f"store {root}: not a directory (nothing to change)")
    gid = _gid(group) if group else None
    modes = SHARED if group else PRIVATE
    changed = 0
    os.chmod(root, modes.directory)  # first: writers from now on follow it
    for path, mode in _walk(root, limit=None):
        changed += _fix(path, mode, modes, gid)
    return {"paths": changed, "group": group, "mode": "shared" if group else "private"}


def _fix(path: str, mode: int, modes: Modes, gid: int | None) -> int:
    wanted = modes.directory if stat.S_ISDIR(mode) else modes.file
    if stat.S_ISREG(mode) and mode & 0o100:
        wanted |= 0o100  # keep an owner's executable bit (never ours, but not ours to drop)
    if gid is not None:
        os.chown(path, -1, gid, follow_symlinks=False)
    if stat.S_IMODE(mode) != wanted:
        os.chmod(path, wanted)  # never a symbolic link: _walk skips them
        return 1
    return 0


def _walk(root: str, limit: int | None) -> Iterator[tuple[str, int]]:
    """(path, mode) of the root and everything below it; symbolic links are not followed."""
    try:
        yield root, os.stat(root).st_mode
    except OSError:
        return
    seen = 1
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                continue
            yield path, mode
            seen += 1
            if limit is not None and seen >= limit:
                return


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"--share-group: no group {group!r} on this machine") from None
