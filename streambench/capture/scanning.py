"""Reading a table's files with polars: one lazy scan, partition values from our listing.

The files hold every column but ``run_id``, which lives in the partition path
(Hive style). Polars is not asked to parse the path: a store root holding
``=`` or ``[`` would confuse it, so the run id comes from the store's own
listing, one scan per partition, concatenated.
"""

from __future__ import annotations

import os
from typing import Any

import polars as pl
import pyarrow as pa


def scan_files(store: Any, paths: list[str], schema: pa.Schema) -> pl.LazyFrame:
    """A lazy frame over ``paths`` (visible files of one table) with ``schema``'s columns."""
    frames = [_scan_partition(store, files, run, schema)
              for (_, run), files in _by_partition(paths).items()]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def empty_frame(schema: pa.Schema) -> pl.LazyFrame:
    return pl.LazyFrame(schema=_polars_schema(schema))


def _scan_partition(store: Any, files: list[str], run_id: str,
                    schema: pa.Schema) -> pl.LazyFrame:
    frame = pl.scan_parquet(
        [store.url(p) for p in files], glob=False, hive_partitioning=False,
        storage_options=store.storage_options(), missing_columns="insert",
        extra_columns="ignore", schema=_file_schema(schema))
    return frame.with_columns(run_id=pl.lit(run_id)).select(schema.names)


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
    return _polars_schema(schema.remove(schema.get_field_index("run_id")))


def _polars_schema(schema: pa.Schema) -> pl.Schema:
    return pl.DataFrame(schema.empty_table()).schema


def _by_partition(paths: list[str]) -> dict[tuple[str, str], list[str]]:
    groups: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        *_, day, run, _name = path.split("/")
        groups.setdefault((day.removeprefix("date="), run.removeprefix("run_id=")),
                          []).append(path)
    return groups


