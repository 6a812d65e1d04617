"""The store's audit log: who pruned, forgot, compacted or touched keys, and what changed.

Append-only JSON lines in ``<store>/audit/audit.jsonl``, one object per action::

    {"time": "2026-11-03T09:12:44.120Z", "user": "alice", "uid": 1000,
     "host": "ci-runner-3", "pid": 4242, "command": "forget",
     "arguments": {"subject": "<hashed>", "dry_run": false},
     "outcome": "ok",
     "changed": {"runs": ["20261103T..."], "partitions": 0, "files": 2, "rows": 17,
                 "bytes": 0},
     "details": {"subject_hashes": ["h1:2026-11:9f0c..."]}}

Appends are safe when several processes act at once: each line is written
with one ``write(2)`` on a file opened ``O_APPEND``, under an exclusive
``flock``. On an object store, which cannot append, each action is its own
object ``audit/<time>-<host>-<pid>-<random>.json``; :func:`read_entries`
reads both forms. Nothing secret is recorded: arguments pass through
:func:`public_arguments` (secret-looking names and URL passwords are
replaced) and a ``forget`` subject appears only as the keyed hashes that
were searched for (the same ``h1:`` tokens the data held), so the log shows
an erasure was done without holding the id it erased.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
import re
import secrets
import socket
import urllib.parse
from typing import Any

LOG = "audit.jsonl"
FOLDER = "audit"
_SECRET_WORDS = ("subject", "password", "secret", "token", "key", "credential", "auth")


def record(store: Any, command: str, *, arguments: dict[str, Any],
           changed: dict[str, Any], details: dict[str, Any] | None = None,
           outcome: str = "ok", error: str | None = None) -> dict[str, Any]:
    """Append one entry to the store's audit log and return it."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entry: dict[str, Any] = {
        "time": now,
        "user": _user(), "uid": os.getuid() if hasattr(os, "getuid") else None,
        "host": socket.gethostname(), "pid": os.getpid(),
        "command": command, "arguments": public_arguments(arguments),
        "outcome": outcome, "changed": changed,
    }
    if details:
        entry["details"] = details
    if error is not None:
        entry["error"] = error
    line = (json.dumps(entry, default=str, sort_keys=False) + "\n").encode()
    with store.errors("append to the audit log"):
        store.files.makedirs(store.join(FOLDER))
        if store.local:
            _append_local(store, store.join(FOLDER, LOG), line)
        else:
            host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())  # a name, not a path
            name = f"{now.replace(':', '')}-{host}-{os.getpid()}-{secrets.token_hex(3)}.json"
            store.files.write_atomic(store.join(FOLDER, name), line)
    return entry


def _append_local(store: Any, path: str, line: bytes) -> None:
    fd = store.files.open_fd(path, os.O_WRONLY | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, line)
        if written != len(line):  # a short write (full disk): never leave half a line
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - written)
            raise OSError(28, "no space left on device", path)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_entries(store: Any) -> list[dict[str, Any]]:
    """Every entry, oldest first (a torn last line is skipped)."""
    entries: list[dict[str, Any]] = []
    with store.errors("read the audit log"):
        for name, is_dir in store.files.listdir(store.join(FOLDER)):
            if is_dir or name.startswith(".") or not name.endswith((".jsonl", ".json")):
                continue
            with contextlib.suppress(FileNotFoundError):
                entries += _parse(store.fs.cat_file(store.join(FOLDER, name)))
    return sorted(entries, key=lambda e: str(e.get("time", "")))


def _parse(data: bytes) -> list[dict[str, Any]]:
    found = []
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            found.append(entry)
    return found


def public_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments fit for the log: secret-looking names masked, URL passwords removed."""
    public: dict[str, Any] = {}
    for name, value in arguments.items():
        if callable(value) or name in ("handler", "command"):
            continue
        if any(word in name.lower() for word in _SECRET_WORDS) and value not in (None, False):
            public[name] = "<hashed>" if name == "subject" else "<redacted>"
        elif isinstance(value, str):
            public[name] = _without_password(value)
        else:
            public[name] = value if _plain(value) else str(value)
    return public


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float) or (
        isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value))


def _without_password(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    parts = urllib.parse.urlsplit(text)
    if parts.password is None and parts.username is None:
        return text
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _user() -> str:
    with contextlib.suppress(Exception):
        return os.environ.get("SUDO_USER") or getpass.getuser()
    return str(os.getuid()) if hasattr(os, "getuid") else "unknown"
