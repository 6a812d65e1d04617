"""A store on ``s3://`` against a local S3 server (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import polars as pl
import pytest

from streambench.capture.schema import Kind
from streambench.capture.store import Store, polars_s3_options
from streambench.capture.writer import CaptureWriter
from tests.capture.storetools import BUCKET
from tests.helpers import write_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_polars_gets_aws_options_it_understands():
    options = {"endpoint_url": "http://127.0.0.1:9000", "key": "k", "secret": "s"}
    assert polars_s3_options(options) == {
        "aws_endpoint_url": "http://127.0.0.1:9000", "aws_region": "us-east-1",
        "aws_allow_http": "true", "aws_access_key_id": "k", "aws_secret_access_key": "s"}
    nested = {"client_kwargs": {"endpoint_url": "https://s3.example", "region_name": "eu-west-1"},
              "anon": True}
    assert polars_s3_options(nested) == {"aws_endpoint_url": "https://s3.example",
                                         "aws_region": "eu-west-1", "aws_skip_signature": "true"}


def test_a_full_run_into_s3_reads_back_lazily(aws_env: dict[str, str], tmp_path: Path):
    path = write_scenario(tmp_path / "s3.yaml",
                          load={"connections": 2, "rate": 100, "duration": "1s"})
    root = f"s3://{BUCKET}/team/store"
    done = subprocess.run(
        [sys.executable, "-m", "streambench", "run", str(path), "--store", root, "--json",
         "--workers", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)

    store = Store(root)
    (manifest,) = store.runs()
    assert manifest["run_id"] == summary["run_id"]
    assert manifest["status"] == "completed"
    assert all(p.startswith(f"{BUCKET}/team/store/events/date=") for p in store.parts("events"))
    events = store.events(summary["run_id"])
    assert isinstance(events, pl.LazyFrame)  # nothing read until collected
    sends = events.filter(pl.col("kind") == "send").select("conn", "cid").collect()
    assert sends.height == summary["sent"] == 100
    assert sorted(sends["conn"].unique()) == [0, 1]
    assert events.select(pl.len()).collect().item() == manifest["counts"]["events"]


def test_options_set_for_fsspec_alone_reach_polars(s3_server: str,
                                                   monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": s3_server, "key": "testing",
                                                   "secret": "testing"})
    store = Store(f"s3://{BUCKET}/configured")
    assert store.storage_options() == {
        "aws_endpoint_url": s3_server, "aws_region": "us-east-1", "aws_allow_http": "true",
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    store.write_manifest({"run_id": "r1", "status": "completed"})
    writer = CaptureWriter(store, "r1", protocol="websocket", offset_ns=0)
    now = time.time_ns()
    writer.submit([(Kind.SEND, now, 0, 1, "0-1", now, now, 2, "/", None, None, "{}")])
    writer.close()
    events = store.events("r1").collect()
    assert events.select("run_id", "kind", "cid").rows() == [("r1", "send", "0-1")]
