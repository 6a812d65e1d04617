"""The store: Hive-partitioned Parquet that any engine can read.

Layout (a contract)::

    <root>/events/date=YYYY-MM-DD/run_id=<id>/<file>.parquet
    <root>/faults/date=YYYY-MM-DD/run_id=<id>/<file>.parquet
    <root>/health/date=YYYY-MM-DD/run_id=<id>/<file>.parquet   process samples
    <root>/runs/<id>.json                      one manifest per run
    <root>/audit/audit.jsonl                   who pruned, forgot, compacted (audit.py)
    <root>/.locks/, <root>/.compaction/        internal: locks, compaction in flight

The root is a local path or any URL fsspec understands (``s3://bucket/prefix``).
Partition columns (``date``, ``run_id``) live in the path, not inside the
files, as Hive partitioning expects. Files are written under a hidden
temporary name and renamed into place, so a reader never sees half a file;
small parts are later compacted into large files atomically (compact.py), so
readers never rely on file names. Run ids are checked against one pattern
(names.py) wherever they enter; a run id is claimed atomically when a run
starts, so two runs can never share one. Modes, atomic writes and error
translation live in files.py, locks in locks.py, manifest rules in catalog.py.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import fsspec
import polars as pl

from streambench.capture import commits
from streambench.capture.catalog import (
    in_progress,
    manifest_run_id,
    owner,
    parse_manifest,
)
from streambench.capture.files import RESERVE_BYTES, StoreFiles, store_errors
from streambench.capture.locks import RunLocks
from streambench.capture.names import check_run_id, is_run_id
from streambench.capture.scanning import empty_frame, polars_s3_options, scan_files
from streambench.capture.schema import EVENT_SCHEMA, FAULT_SCHEMA, HEALTH_SCHEMA
from streambench.errors import (
    ConfigError,
    RunIdTaken,
    RunInProgress,
    RunNotFound,
    StoreError,
)
from streambench.logs import get_logger
from streambench.scrub import scrub_obj

TABLES = {"events": EVENT_SCHEMA, "faults": FAULT_SCHEMA, "health": HEALTH_SCHEMA}
log = get_logger("streambench.store")


DEFAULT_STORE = "./data"


def store_root(explicit: str | None = None) -> str:
    """The store root: ``explicit`` (``--store``), else ``STREAMBENCH_STORE``, else ./data.

    An explicit but empty ``--store ''`` is an error (a script whose variable
    came out empty), not the default; an empty ``STREAMBENCH_STORE`` counts
    as unset, as an empty environment variable usually does.
    """
    if explicit is not None:
        if not explicit.strip():
            raise ConfigError("--store: the store root is empty (give a path or a URL)")
        return explicit
    return os.environ.get("STREAMBENCH_STORE") or DEFAULT_STORE


class Store:
    """A store root. Cheap to create; touches storage only when used."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        if not self.root.strip():
            raise ConfigError("store: the store root is empty (pass --store DIR, or set "
                              "STREAMBENCH_STORE)")
        try:
            self.fs, path = fsspec.core.url_to_fs(self.root)
        except (ValueError, ImportError, TypeError) as exc:
            raise StoreError(f"store {self.root}: {exc}") from exc
        if "memory" in _protocols(self.fs):
            raise StoreError(f"store {self.root}: a memory:// store lives inside one process; "
                             "runs, workers and later commands cannot see it (use a path or "
                             "s3://)")
        self.path = path.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        self.files = StoreFiles(self.fs, self.path, local=self.local, where=self.root)
        self.locks = RunLocks(self.files)
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """Translate storage errors met while ``doing`` something into StoreError."""
        return store_errors(self.root, doing)

    # -- paths ---------------------------------------------------------------
    def join(self, *parts: str) -> str:
        return "/".join((self.path, *parts))

    def url(self, path: str) -> str:
        """A path inside the store as a URL polars/pyarrow can open."""
        if self.local:
            return path
        return f"{_protocols(self.fs)[0]}://{path}"

    def partition_dir(self, table: str, date: str, run_id: str) -> str:
        return self.join(table, f"date={date}", f"run_id={check_run_id(run_id)}")

    def manifest_path(self, run_id: str) -> str:
        return self.join("runs", f"{check_run_id(run_id)}.json")

    # -- manifests -----------------------------------------------------------
    def claim_run(self, manifest: Mapping[str, Any]) -> None:
        """Write a new run's first manifest; RunIdTaken if the id was ever used here.

        The claim is atomic (a hard link on a local store, a conditional PUT
        on S3): of two runs started with one id, exactly one gets it.
        """
        run_id = check_run_id(manifest.get("run_id"), where="run id")
        with self.errors(f"claim run id {run_id}"):
            self.files.makedirs(self.join("runs"))
            if not self.files.create_exclusive(self.manifest_path(run_id), _encode(manifest)):
                raise RunIdTaken(self.root, run_id)
            if self.local and in_progress(manifest):
                self.files.write_atomic(self._reserve_path(run_id), bytes(RESERVE_BYTES))

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Write a run's manifest: claim the id if new, else update the run's own.

        A manifest of another run under the same id (another host, pid or
        start time) is never overwritten: RunIdTaken. On a full disk the
        space reserved at the claim takes the last manifest, so a run that
        failed for lack of space still says ``failed`` and why.
        """
        run_id = check_run_id(manifest.get("run_id"), where="run id")
        existing = self._raw_manifest(run_id)
        if existing is None:
            self.claim_run(manifest)
            return
        if not isinstance(existing, dict) or owner(existing) != owner(manifest):
            raise RunIdTaken(self.root, run_id)
        with self.errors(f"write the manifest of run {run_id}"):
            self._replace_manifest(run_id, _encode(manifest))
            if not in_progress(manifest):
                self.files.remove(self._reserve_path(run_id))

    def _replace_manifest(self, run_id: str, data: bytes) -> None:
        self.files.write_atomic(self.manifest_path(run_id), data,
                                reserve=self._reserve_path(run_id))

    def _reserve_path(self, run_id: str) -> str:
        return self.join("runs", f".{check_run_id(run_id)}.reserve")

    def _raw_manifest(self, run_id: str) -> Any:
        """The manifest file's JSON as it is (not validated); None if there is none."""
        with self.errors(f"read the manifest of run {run_id}"):
            try:
                data = self.fs.cat_file(self.manifest_path(run_id))
            except FileNotFoundError:
                return None
        try:
            return json.loads(data)
        except ValueError:
            return "unreadable"

    def manifest(self, run_id: str) -> dict[str, Any]:
        """The manifest of a run (``latest`` allowed); RunNotFound if there is none."""
        run_id = self.resolve_run(run_id)
        path = self.manifest_path(run_id)
        with self.errors(f"read the manifest of run {run_id}"):
            try:
                data = self.fs.cat_file(path)
            except FileNotFoundError:
                raise RunNotFound(self.root, run_id) from None
        manifest, why = parse_manifest(data, run_id=run_id)
        if manifest is None:
            raise StoreError(f"{path}: not a run manifest ({why})")
        return manifest

    def finished_manifest(self, run_id: str, *, doing: str = "") -> dict[str, Any]:
        """The manifest of a run that is no longer being written; RunInProgress if it is."""
        manifest = self.manifest(run_id)
        if in_progress(manifest):
            raise RunInProgress(self.root, manifest, doing=doing)
        return manifest

    def judged_manifest(self, run_id: str, *, doing: str) -> dict[str, Any]:
        """The manifest of a run a gate may judge: finished, with events captured."""
        manifest = self.finished_manifest(run_id, doing=doing)
        if not self.parts("events", manifest["run_id"]):
            why = manifest.get("error") or manifest.get("abort_reason")
            raise StoreError(f"cannot {doing}: run {manifest['run_id']} captured no events "
                             f"(status {manifest.get('status')}"
                             + (f": {why}" if why else "") + ")")
        return manifest

    def runs(self, *, scenario: str | None = None) -> list[dict[str, Any]]:
        """Every run's manifest, oldest first (optionally of one scenario).

        A file in ``runs/`` that is not a valid manifest is skipped with a
        warning naming it (once per Store), never an error.
        """
        manifests = []
        for name, is_dir in self.list_dir("runs"):
            run_id = manifest_run_id(name)
            if is_dir or run_id is None:
                continue
            manifest = self._read_listed(name, run_id)
            if manifest is None:
                continue
            if scenario is None or manifest.get("scenario", {}).get("name") == scenario:
                manifests.append(manifest)
        return sorted(manifests, key=lambda m: str(m.get("started", "")))

    def _read_listed(self, name: str, run_id: str) -> dict[str, Any] | None:
        path = self.join("runs", name)
        if not is_run_id(run_id):
            self._warn(path, "its name is not a valid run id")
            return None
        with self.errors(f"read {name}"):
            try:
                data = self.fs.cat_file(path)
            except (FileNotFoundError, IsADirectoryError):
                return None  # deleted since listed
        manifest, why = parse_manifest(data, run_id=run_id)
        if manifest is None:
            self._warn(path, why)
        return manifest

    def _warn(self, path: str, why: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            log.warning("skipping %s: not a run manifest (%s)", path, why)

    def resolve_run(self, run_id: str, *, running: bool = False) -> str:
        """Accept ``latest`` (and ``latest:<scenario>``) as well as a literal run id.

        ``latest`` is the newest run that is no longer being written, unless
        ``running`` (a live dashboard) allows runs in progress too.
        """
        if run_id != "latest" and not run_id.startswith("latest:"):
            return check_run_id(run_id)
        scenario = run_id.partition(":")[2] or None
        runs = [m for m in self.runs(scenario=scenario) if running or not in_progress(m)]
        if not runs:
            raise RunNotFound(self.root, run_id)
        return str(runs[-1]["run_id"])

    # -- tables --------------------------------------------------------------
    def list_dir(self, *parts: str) -> list[tuple[str, bool]]:
        """(name, is_directory) entries of a folder of the store; [] if it is missing."""
        with self.errors(f"list {'/'.join(parts) or 'the store'}"):
            return self.files.listdir(self.join(*parts))

    def parts(self, table: str, run_id: str | None = None) -> list[str]:
        """The visible data files of a table, all runs or one (never a temporary file,
        never a file an unfinished compaction hides)."""
        if run_id is not None:
            check_run_id(run_id)
        found = []
        with self.errors(f"list {table}"):
            for day, runs in self._partitions(table):
                for run in runs:
                    if run_id is None or run == run_id:
                        directory = self.join(table, day, f"run_id={run}")
                        found += [f"{directory}/{n}" for n, d in self.files.listdir(directory)
                                  if not d and _is_data_file(n)]
            hidden = commits.hidden_files(self, table) if found else set()
        return sorted(p for p in found if p not in hidden)

    def _partitions(self, table: str) -> Iterator[tuple[str, list[str]]]:
        for day, is_dir in self.files.listdir(self.join(table)):
            if is_dir and day.startswith("date=") and not day.startswith("."):
                runs = [name.removeprefix("run_id=")
                        for name, d in self.files.listdir(self.join(table, day))
                        if d and name.startswith("run_id=")]
                yield day, [r for r in runs if is_run_id(r)]

    def scan(self, table: str, run_id: str | None = None) -> pl.LazyFrame:
        """A lazy scan of a table (all runs, or one); empty with the schema if none."""
        schema = TABLES[table]
        if run_id is not None:
            run_id = self.resolve_run(run_id)
        parts = self.parts(table, run_id)
        if not parts:
            if run_id is not None and self._raw_manifest(run_id) is None:
                raise RunNotFound(self.root, run_id)
            return empty_frame(schema)
        return scan_files(self, parts, schema)

    def events(self, run_id: str | None = None) -> pl.LazyFrame:
        """Events of one run (``latest`` allowed), or of every run when None."""
        return self.scan("events", run_id)

    def faults(self, run_id: str | None = None) -> pl.LazyFrame:
        """Injected faults (ground truth) of one run, or of every run."""
        return self.scan("faults", run_id)

    def health(self, run_id: str | None = None) -> pl.LazyFrame:
        """Per-interval process samples (memory, open files, CPU, event-loop stalls)
        of one run, or of every run; empty for runs recorded without them."""
        return self.scan("health", run_id)

    def storage_options(self) -> dict[str, Any] | None:
        """Options for polars' own cloud reader (not fsspec's: the keys differ)."""
        if self.local:
            return None
        options = dict(getattr(self.fs, "storage_options", None) or {})
        if {"s3", "s3a"} & set(_protocols(self.fs)):
            return polars_s3_options(options)
        return options or None


def _is_data_file(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def _encode(manifest: Mapping[str, Any]) -> bytes:
    """A manifest as written: every string passes :func:`streambench.scrub.scrub_obj`
    (secrets never reach disk)."""
    return json.dumps(scrub_obj(manifest), indent=2, default=str).encode()


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
