"""HMAC keys for hashed fields, one key per rotation period.

A hashed value reads ``h1:<period>:<hex16>``: the first 16 hex digits of
HMAC-SHA256(period key, value). Equal values link within a period and not
across periods, and a period whose key is gone can no longer be linked to a
raw id by anyone. The period is the event's timestamp period:

    rotation   period id     example
    daily      YYYY-MM-DD    2026-11-03
    weekly     GGGG-Www      2026-W45 (ISO week)
    monthly    YYYY-MM       2026-11
    never      all           all

Where keys come from (first that applies):

* ``key_file`` in the policy: a JSON file holding one random key per period
  (created on first use of a period, written atomically, mode 0600)::

      {"streambench_hash_keys": 1,
       "periods": {"2026-10": "<64 hex>", "2026-11": "<64 hex>"},
       "destroyed": ["2026-09"]}

  ``destroy_period`` deletes a period's key and records the period as destroyed,
  so it is never re-created: data of that period becomes unlinkable.
* ``STREAMBENCH_HASH_KEY``: a master secret (>= 16 characters); the key of a
  period is HMAC-SHA256(master, "streambench-period:" + period). Every period
  stays derivable while the master exists; rotate the master to unlink all.
* the user's default key file, ``~/.config/streambench/hash-keys.json``
  (``$XDG_CONFIG_HOME`` respected), made by ``streambench keys init``: the
  same format as ``key_file``, outside the repository and the store.

Neither key nor secret is ever written to the store, a manifest or a log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hmac
import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc

from streambench.errors import ConfigError

ENV_VAR = "STREAMBENCH_HASH_KEY"
FORMAT_KEY = "streambench_hash_keys"
_PERIOD_FORMATS = {"daily": "%Y-%m-%d", "weekly": "%G-W%V", "monthly": "%Y-%m"}


class KeyProvider(Protocol):
    """Gives the HMAC key of a period, or None if that period's key was destroyed."""

    def key(self, period: str) -> bytes | None: ...

    def held_periods(self) -> list[str] | None:
        """Periods whose key is held, or None when any period can be derived."""
        ...


class MasterKey:
    """Period keys derived from one master secret (the env var)."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 16:
            raise ConfigError(f"${ENV_VAR} is too short: give at least 16 characters")
        self._master = master

    def key(self, period: str) -> bytes | None:
        return hmac.digest(self._master, b"streambench-period:" + period.encode(), "sha256")

    def held_periods(self) -> list[str] | None:
        return None


class KeyFile:
    """Per-period random keys in a JSON file (format in the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, create_missing: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.create_missing = create_missing
        self._lock = threading.Lock()
        self._doc = read_key_file(self.path)

    def key(self, period: str) -> bytes | None:
        with self._lock:
            hexkey = self._doc["periods"].get(period)
            if hexkey is None and self.create_missing and period not in self._doc["destroyed"]:
                hexkey = self._add(period)
        return bytes.fromhex(hexkey) if hexkey else None

    def held_periods(self) -> list[str] | None:
        return sorted(self._doc["periods"])

    def _add(self, period: str) -> str | None:
        with _file_lock(self.path):
            self._doc = read_key_file(self.path)  # another process may have added it
            if period in self._doc["destroyed"]:
                return None
            if period not in self._doc["periods"]:
                self._doc["periods"][period] = secrets.token_hex(32)
                _write_key_file(self.path, self._doc)
            return str(self._doc["periods"][period])


def create_key_file(path: str | os.PathLike[str]) -> Path:
    """Create an empty key file (mode 0600); ConfigError if it already exists."""
    target = Path(path).expanduser()
    if target.exists():
        raise ConfigError(f"key file {target} already exists")
    _write_key_file(target, {FORMAT_KEY: 1, "periods": {}, "destroyed": []})
    return target


def check_period(period: str) -> str:
    """``period`` if it is a period id (table above); else ConfigError saying the forms."""
    try:
        if period == "all":
            return period
        if re.fullmatch(r"[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])", period):
            return period
        if re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", period):
            return period
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", period):
            dt.date.fromisoformat(period)
            return period
    except ValueError:
        pass
    raise ConfigError(f"period {period!r} is not a period id: expected YYYY-MM (monthly, "
                      "e.g. 2026-11), YYYY-Www (weekly, 2026-W45), YYYY-MM-DD (daily, "
                      "2026-11-03) or all")


def destroy_period(path: str | os.PathLike[str], period: str) -> bool:
    """Delete ``period``'s key for good; True if a key was held. Data hashed in that
    period can no longer be linked to a raw id (nor found by ``forget``). ConfigError
    if ``period`` is not a period id (:func:`check_period`)."""
    check_period(period)
    target = Path(path).expanduser()
    with _file_lock(target):
        doc = read_key_file(target)
        held = doc["periods"].pop(period, None) is not None
        if period not in doc["destroyed"]:
            doc["destroyed"].append(period)
        _write_key_file(target, doc)
    return held


def default_key_file(environ: dict[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/streambench/hash-keys.json`` (``~/.config/...`` by default)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "streambench" / "hash-keys.json"


def load_key_provider(
    *, key_file: str | None, environ: dict[str, str] | None = None, create_missing: bool = True
) -> KeyProvider | None:
    """The key file if named, else the env master, else the user's default key file
    (``streambench keys init``) if it exists, else None (no key available).
    ``create_missing=False`` for readers (forget): never add a period key."""
    if key_file:
        return KeyFile(key_file, create_missing=create_missing)
    master = (os.environ if environ is None else environ).get(ENV_VAR)
    if master:
        return MasterKey(master.encode())
    default = default_key_file(environ)
    return KeyFile(default, create_missing=create_missing) if default.exists() else None


def period_ids(ts: pa.Array | pa.ChunkedArray, rotation: str) -> pa.Array:
    """Period id of every timestamp (UTC), as strings; formats per unique day."""
    if rotation == "never":
        return pa.array(["all"] * len(ts), pa.string())
    days = pc.cast(ts, pa.date32())
    if isinstance(days, pa.ChunkedArray):
        days = days.combine_chunks()
    encoded = days.dictionary_encode()
    stamps = pc.cast(pc.cast(encoded.dictionary, pa.timestamp("s")), pa.timestamp("s", "UTC"))
    names = pc.strftime(stamps, format=_PERIOD_FORMATS[rotation])
    return names.take(encoded.indices)


def hash_value(key: bytes, period: str, value: str) -> str:
    """The stored form of a hashed value: ``h1:<period>:<hex16>``."""
    digest = hmac.digest(key, value.encode("utf-8", "surrogatepass"), "sha256")
    return f"h1:{period}:{digest[:8].hex()}"


HASHED = r"^h1:[0-9A-Za-z-]+:[0-9a-f]{16}$"
_HASHED = re.compile(HASHED)
_CACHE_MAX = 200_000


class Hasher:
    """Hashes columns of values with their period keys, caching repeated values.

    Values already in hashed form are left as they are (so redaction is
    idempotent); values of a period whose key was destroyed become null and are
    counted in ``destroyed``. Thread-safe only as far as one caller at a time.
    """

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self.destroyed = 0
        self._cache: dict[str, str | None] = {}
        self._keys: dict[str, bytes | None] = {}

    def hash_array(self, values: pa.Array, periods: pa.Array) -> pa.Array:
        """Hash each string of ``values`` with the key of the period at the same
        position; nulls stay null. Work is per distinct (period, value)."""
        large = pa.large_string()
        joined = pc.binary_join_element_wise(
            pc.cast(periods, large), pc.cast(values, large), pa.scalar("\x1f", large)
        )
        encoded = joined.dictionary_encode()
        unique = [self._one(item) for item in encoded.dictionary.to_pylist()]
        out = pa.array(unique, pa.large_string()).take(encoded.indices)
        self.destroyed += out.null_count - joined.null_count
        return out

    def _one(self, item: str) -> str | None:
        found = self._cache.get(item, "")
        if found != "":
            return found
        period, value = item.split("\x1f", 1)
        if _HASHED.match(value):
            result: str | None = value
        else:
            key = self._key(period)
            result = None if key is None else hash_value(key, period, value)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[item] = result
        return result

    def _key(self, period: str) -> bytes | None:
        if period not in self._keys:
            self._keys[period] = self.provider.key(period)
        return self._keys[period]


def read_key_file(path: Path) -> dict[str, Any]:
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"hash key file {path} does not exist (create it with "
                          "`streambench keys init --file PATH`)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"hash key file {path} is unreadable: {exc}") from exc
    ok = (isinstance(doc, dict) and doc.get(FORMAT_KEY) == 1
          and isinstance(doc.get("periods"), dict) and isinstance(doc.get("destroyed", []), list))
    if not ok:
        raise ConfigError(f"hash key file {path} is not a streambench key file "
                          f'(expected {{"{FORMAT_KEY}": 1, "periods": {{...}}}})')
    doc.setdefault("destroyed", [])
    for period, hexkey in doc["periods"].items():
        if not isinstance(hexkey, str) or len(hexkey) < 32 or not _is_hex(hexkey):
            raise ConfigError(
                f"hash key file {path}: key of period {period} is not >= 32 hex digits"
            )
    return cast(dict[str, Any], doc)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _write_key_file(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(doc, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write hash key file {path}: {exc}") from exc


@contextlib.contextmanager
def _file_lock(path: Path):  # type: ignore[no-untyped-def]
    """Serialise writers of one key file across processes."""
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock hash key file {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
