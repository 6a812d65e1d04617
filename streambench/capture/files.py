"""Every write into a store goes through here: modes, atomic renames, errors.

* **Private by default.** On a local store, directories are created 0700 and
  files 0600, whatever the process umask. A store is *shared with a group*
  when its root directory carries the set-group-id bit and group access
  (``streambench permissions --share-group GROUP`` sets that up): then
  directories are 2770 and files 0660, and the group is inherited from the
  root. Nothing is ever readable by others. (An object store has no modes:
  its bucket policy decides.)
* **Atomic.** A file is written under a hidden temporary name in its own
  directory and renamed into place, so a reader never sees half a file; if the
  write fails (a full disk), the temporary file is removed before the error
  is raised. :meth:`StoreFiles.create_exclusive` publishes a complete file
  only if none exists (a hard link on a local store, a conditional PUT on S3).
* **Errors in one line.** ``OSError`` and cloud-client errors become
  :class:`~streambench.errors.StoreError` naming the store and what was being
  done (:func:`store_errors`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import fsspec

from streambench.errors import StoreError, StreambenchError

PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
RESERVE_BYTES = 256 * 1024  # room kept for a run's last manifest on a disk that fills up
SHARED_DIR, SHARED_FILE = 0o2770, 0o660


@dataclass(frozen=True)
class Modes:
    """Modes new directories and files get (local stores only)."""

    directory: int
    file: int

    @property
    def shared(self) -> bool:
        return bool(self.file & 0o070)


PRIVATE = Modes(PRIVATE_DIR, PRIVATE_FILE)
SHARED = Modes(SHARED_DIR, SHARED_FILE)


def modes_of_root(path: str) -> Modes:
    """SHARED if the root directory is set-group-id with group access, else PRIVATE."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return PRIVATE
    return SHARED if mode & stat.S_ISGID and mode & 0o070 == 0o070 else PRIVATE


@contextlib.contextmanager
def store_errors(where: str, doing: str) -> Iterator[None]:
    """Turn OSError and cloud-client errors into one-line StoreErrors."""
    try:
        yield
    except StreambenchError:
        raise
    except OSError as exc:
        raise StoreError(f"store {where}: cannot {doing}: {describe(exc)}") from exc
    except Exception as exc:
        if not _is_cloud_error(exc):
            raise
        raise StoreError(f"store {where}: cannot {doing}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """A short reason: 'no space left on device', 'permission denied', ..."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number in errno.errorcode:
        reason = os.strerror(number).lower()
        name = getattr(exc, "filename", None)
        return f"{reason} ({name})" if name else reason
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_cloud_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.split(".")[0] in {"botocore", "aiobotocore", "s3fs", "gcsfs", "adlfs",
                                    "aiohttp", "google", "azure"}


class StoreFiles:
    """Writes and listings under one store root (local path or fsspec URL)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, *, local: bool,
                 where: str) -> None:
        self.fs = fs
        self.root = root
        self.local = local
        self.where = where
        self._modes: Modes | None = None

    # -- modes -------------------------------------------------------------------
    def modes(self) -> Modes:
        if self._modes is None:
            self._modes = modes_of_root(self.root) if self.local else PRIVATE
        return self._modes

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its missing parents with the store's directory mode."""
        if not self.local:
            self.fs.makedirs(path, exist_ok=True)
            return
        missing = []
        current = path
        while current and not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        mode = self.modes().directory
        for directory in reversed(missing):
            try:
                os.mkdir(directory, mode & 0o777)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory",
                                             directory) from None
                continue
            os.chmod(directory, mode)  # the umask may have taken bits away

    # -- writing -------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic(self, path: str) -> Iterator[IO[bytes]]:
        """A file to write; renamed to ``path`` when the block ends, removed on error."""
        tmp = temporary_name(path)
        try:
            with self._open_new(tmp) as f:
                yield f
            self._rename(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def write_atomic(self, path: str, data: bytes, *, reserve: str | None = None) -> None:
        """Write ``data`` at ``path`` atomically. On a full disk, a ``reserve`` file
        (space allocated earlier, :data:`RESERVE_BYTES`) takes the data instead: its
        blocks are overwritten, not allocated, then it is renamed to ``path``."""
        try:
            with self.atomic(path) as f:
                f.write(data)
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if not (full and reserve and self.local and self._fill_reserve(reserve, data)):
                raise
            os.replace(reserve, path)

    def _fill_reserve(self, reserve: str, data: bytes) -> bool:
        if len(data) > RESERVE_BYTES or not os.path.exists(reserve):
            return False
        with open(reserve, "r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return True

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Publish ``data`` at ``path`` only if nothing is there; False if something is."""
        if not self.local:
            return self._create_exclusive_remote(path, data)
        tmp = temporary_name(path)
        try:
            with self._open_new(tmp) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # atomic, and refuses an existing name
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return True

    def _create_exclusive_remote(self, path: str, data: bytes) -> bool:
        if self.fs.exists(path):
            return False
        try:
            with self.fs.open(path, "xb") as f:  # a conditional PUT where supported
                f.write(data)
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError):  # no exclusive mode: checked above
            with self.fs.open(path, "wb") as f:
                f.write(data)
        return True

    def _open_new(self, path: str) -> Any:
        if not self.local:
            return self.fs.open(path, "wb")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     self.modes().file)
        os.fchmod(fd, self.modes().file)
        return os.fdopen(fd, "wb")

    def _rename(self, source: str, target: str) -> None:
        if self.local:
            os.replace(source, target)
        else:
            self.fs.mv(source, target)

    def open_fd(self, path: str, flags: int) -> int:
        """``os.open`` a local file, creating it with the store's file mode if missing."""
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.modes().file)
        except FileExistsError:
            return os.open(path, flags | os.O_CLOEXEC)
        os.fchmod(fd, self.modes().file)  # the umask may have taken bits away
        return fd

    def remove(self, path: str) -> None:
        """Delete one file; a file already gone is not an error."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    # -- listing ------------------------------------------------------------------------
    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_directory) of each entry of ``path``, sorted; [] if it is missing.

        Never a glob: a store path holding ``[`` ``]`` or ``*`` lists correctly.
        """
        if self.local:
            return _listdir_local(path)
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return sorted((str(e["name"]).rstrip("/").rsplit("/", 1)[-1], e["type"] == "directory")
                      for e in found if str(e["name"]).rstrip("/") != path.rstrip("/"))


_LIST_TRIES = 20  # listings that raced a directory swap, before giving up


def _listdir_local(path: str) -> list[tuple[str, bool]]:
    """The entries of the directory that is at ``path`` when the listing ends.

    Compaction swaps a run's directory for a new one and then empties the old
    one: a listing that opened the old directory just before the swap could read
    it half-emptied (a reader would see "neither"). So the directory listed must
    still be the one at ``path`` afterwards; if a swap came between, list again."""
    found: list[tuple[str, bool]] = []
    for _ in range(_LIST_TRIES):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return []
        try:
            with os.scandir(fd) as it:
                found = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
            listed = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return []
        if (now.st_dev, now.st_ino) == (listed.st_dev, listed.st_ino):
            return found
    return found  # swapped under every try: what the last listing saw


def temporary_name(path: str) -> str:
    """A hidden name beside ``path`` that no reader lists and no other writer uses."""
    directory, _, name = path.rpartition("/")
    return f"{directory}/.{name}.{os.getpid()}.{secrets.token_hex(3)}.tmp"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")
