"""The store: Hive-partitioned Parquet that any engine can read.

Layout (a contract)::

    <root>/events/date=YYYY-MM-DD/run_id=<id>/part-NNNNN.parquet
    <root>/faults/date=YYYY-MM-DD/run_id=<id>/part-NNNNN.parquet
    <root>/health/date=YYYY-MM-DD/run_id=<id>/part-NNNNN.parquet   process samples
    <root>/runs/<id>.json                      one manifest per run

The root is a local path or any URL fsspec understands (``s3://bucket/prefix``).
Partition columns (``date``, ``run_id``) live in the path, not inside the part
files, as Hive partitioning expects. Parts are written under a hidden
temporary name and renamed into place, so a reader never sees half a part;
manifests likewise. A run whose manifest still
says ``running`` but whose process is gone (``kill -9``) is reported as
``aborted`` with ``stale: true``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

import fsspec
import polars as pl
import pyarrow as pa

from streambench.capture.schema import EVENT_SCHEMA, FAULT_SCHEMA, HEALTH_SCHEMA
from streambench.errors import RunNotFound, StoreError
from streambench.scrub import scrub_obj

TABLES = {"events": EVENT_SCHEMA, "faults": FAULT_SCHEMA, "health": HEALTH_SCHEMA}


DEFAULT_STORE = "./data"


def store_root(explicit: str | None = None) -> str:
    """The store root: ``explicit`` (``--store``), else ``STREAMBENCH_STORE``, else ./data."""
    return explicit or os.environ.get("STREAMBENCH_STORE") or DEFAULT_STORE


class Store:
    """A store root. Cheap to create; touches storage only when used."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        try:
            self.fs, self.path = fsspec.core.url_to_fs(self.root)
        except (ValueError, ImportError) as exc:
            raise StoreError(f"store {self.root}: {exc}") from exc
        self.path = self.path.rstrip("/")
        self.local = "file" in _protocols(self.fs)

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # -- paths ---------------------------------------------------------------
    def join(self, *parts: str) -> str:
        return "/".join((self.path, *parts))

    def url(self, path: str) -> str:
        """A path inside the store as a URL polars/pyarrow can open."""
        if self.local:
            return path
        return f"{_protocols(self.fs)[0]}://{path}"

    def partition_dir(self, table: str, date: str, run_id: str) -> str:
        return self.join(table, f"date={date}", f"run_id={run_id}")

    def manifest_path(self, run_id: str) -> str:
        return self.join("runs", f"{run_id}.json")

    # -- manifests -----------------------------------------------------------
    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Write a run manifest atomically (temporary name, then rename); every string
        in it passes :func:`streambench.scrub.scrub_obj` (secrets never reach disk)."""
        path = self.manifest_path(manifest["run_id"])
        self.fs.makedirs(self.join("runs"), exist_ok=True)
        data = json.dumps(scrub_obj(manifest), indent=2, default=str).encode()
        write_atomic(self.fs, path, data)

    def manifest(self, run_id: str) -> dict[str, Any]:
        run_id = self.resolve_run(run_id)
        try:
            with self.fs.open(self.manifest_path(run_id), "rb") as f:
                manifest: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            raise RunNotFound(self.root, run_id) from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"{self.manifest_path(run_id)}: unreadable manifest ({exc})") from exc
        return _mark_stale(manifest)

    def runs(self, *, scenario: str | None = None) -> list[dict[str, Any]]:
        """Every run's manifest, oldest first (optionally of one scenario)."""
        try:
            paths = sorted(self.fs.glob(self.join("runs", "*.json")))
        except FileNotFoundError:
            return []
        manifests = []
        for path in paths:
            try:
                with self.fs.open(path, "rb") as f:
                    manifest = _mark_stale(json.load(f))
            except (OSError, json.JSONDecodeError):
                continue  # a torn or foreign file is not a run
            if scenario is None or manifest.get("scenario", {}).get("name") == scenario:
                manifests.append(manifest)
        return sorted(manifests, key=lambda m: str(m.get("started", "")))

    def resolve_run(self, run_id: str) -> str:
        """Accept ``latest`` (and ``latest:<scenario>``) as well as a literal run id."""
        if run_id != "latest" and not run_id.startswith("latest:"):
            return run_id
        scenario = run_id.partition(":")[2] or None
        runs = self.runs(scenario=scenario)
        if not runs:
            raise RunNotFound(self.root, run_id)
        return str(runs[-1]["run_id"])

    # -- tables --------------------------------------------------------------
    def parts(self, table: str, run_id: str | None = None) -> list[str]:
        """Completed part files of a table (temporary files are never listed)."""
        run = f"run_id={run_id}" if run_id else "run_id=*"
        if not self.local:  # other processes write here: a cached listing would be stale
            self.fs.invalidate_cache(self.join(table))
        try:
            return sorted(self.fs.glob(self.join(table, "date=*", run, "*.parquet")))
        except FileNotFoundError:
            return []

    def scan(self, table: str, run_id: str | None = None) -> pl.LazyFrame:
        """A lazy scan of a table (all runs, or one); empty with the schema if none."""
        schema = TABLES[table]
        if run_id is not None:
            run_id = self.resolve_run(run_id)
        parts = self.parts(table, run_id)
        if not parts:
            if run_id is not None and not self.fs.exists(self.manifest_path(run_id)):
                raise RunNotFound(self.root, run_id)
            return pl.LazyFrame(schema=pl.from_arrow(schema.empty_table()).schema)
        frame = pl.scan_parquet(
            [self.url(p) for p in parts],
            hive_partitioning=True,
            hive_schema={"date": pl.Date, "run_id": pl.String},
            storage_options=self.storage_options(),
            missing_columns="insert",
            extra_columns="ignore",
            schema=_file_schema(schema),
        )
        return frame.select(schema.names)

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


def polars_s3_options(options: dict[str, Any]) -> dict[str, str] | None:
    """s3fs options (and the standard AWS variables) as polars' ``aws_*`` options.

    An endpoint such as ``AWS_ENDPOINT_URL=http://127.0.0.1:9000`` (MinIO,
    moto, Ceph) needs ``aws_allow_http`` for plain HTTP and a region, which
    s3fs does not need but polars does.
    """
    env = os.environ
    client = options.get("client_kwargs") or {}
    endpoint = (options.get("endpoint_url") or client.get("endpoint_url")
                or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"))
    region = (client.get("region_name") or env.get("AWS_REGION")
              or env.get("AWS_DEFAULT_REGION") or ("us-east-1" if endpoint else None))
    key = options.get("key") or env.get("AWS_ACCESS_KEY_ID")
    secret = options.get("secret") or env.get("AWS_SECRET_ACCESS_KEY")
    token = options.get("token") or env.get("AWS_SESSION_TOKEN")
    found = {"aws_endpoint_url": endpoint, "aws_region": region,
             "aws_allow_http": "true" if str(endpoint).startswith("http://") else None,
             "aws_skip_signature": "true" if options.get("anon") else None}
    if key and secret:
        found |= {"aws_access_key_id": key, "aws_secret_access_key": secret,
                  "aws_session_token": token}
    return {k: str(v) for k, v in found.items() if v} or None


def _file_schema(schema: pa.Schema) -> pl.Schema:
    """Columns inside the part files: ``run_id`` lives in the partition path only.

    Keeping partition columns out of the files is what lets pyarrow, DuckDB
    and Spark read the store with plain Hive partitioning (Spark refuses a
    column that is both in the data and in the path).
    """
    return pl.from_arrow(schema.empty_table().drop_columns(["run_id"])).schema


def write_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write bytes under a hidden temporary name, then rename into place."""
    directory, _, name = path.rpartition("/")
    tmp = f"{directory}/.{name}.{os.getpid()}.tmp"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _mark_stale(manifest: dict[str, Any]) -> dict[str, Any]:
    """A ``running`` manifest whose process is gone from this host is an aborted run."""
    if manifest.get("status") != "running":
        return manifest
    host, pid = manifest.get("host"), manifest.get("pid")
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return {**manifest, "status": "aborted", "stale": True}
    return manifest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
