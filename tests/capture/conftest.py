"""Fixtures of the store tests: a local S3 server (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests
import s3fs
from moto.server import ThreadedMotoServer

from tests.capture.storetools import BUCKET
from tests.helpers import free_port

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free port with one bucket; yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3fs.S3FileSystem.clear_instance_cache()  # instances remember an earlier endpoint
    try:
        # moto keeps its buckets per process, not per server: start from empty
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing").mkdir(BUCKET)
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


@pytest.fixture
def aws_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The standard AWS variables pointing at the local server (what a user would set)."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_DEFAULT_REGION": "us-east-1", **KEYS}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
