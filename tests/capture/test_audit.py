"""The audit log (issue 15 item 4): who did what to the store, with no subject and no secret."""

from __future__ import annotations

import getpass
import json
import multiprocessing
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streambench.capture import audit
from streambench.capture.keys import hash_value, load_key_provider
from streambench.capture.store import Store
from streambench.cli import main
from tests.capture.storetools import finished, hashing_run, users_part, write_part

SUBJECT = "alice.subject@example.com"


def test_prune_and_forget_are_recorded_without_the_subject_or_a_secret(
        store: Store, tmp_path: Path, hash_key: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch):
    hashing_run(store, "r")
    today = datetime.now(UTC).date().isoformat()  # young: prune keeps it
    users_part(store, "r", [SUBJECT, "bob", SUBJECT], start=0, day=today)
    users_part(store, "r", ["carol"], start=10, day=today)
    finished(store, "old", scenario={"capture": {"retention_days": 1}})
    write_part(store, "old", range(5), day="2020-01-01")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    assert main(["prune", "--store", store.root]) == 0
    assert main(["forget", "--subject", SUBJECT, "--store", store.root]) == 0
    assert main(["keys", "init", "--store", store.root]) == 0
    assert main(["keys", "destroy", "2020-01", "--store", store.root]) == 0
    capsys.readouterr()

    assert main(["audit", "--json", "--store", store.root]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["command"] for e in entries] == ["prune", "forget", "keys", "keys"]
    for entry in entries:
        assert entry["user"] == getpass.getuser()
        assert entry["host"] == socket.gethostname()
        assert entry["outcome"] == "ok"
        assert entry["time"].endswith("Z")
    pruned, forgot, init, destroyed = entries
    assert pruned["changed"] == {"runs": ["old"], "partitions": 1, "files": 1, "rows": 5,
                                 "bytes": pruned["changed"]["bytes"]}
    assert pruned["changed"]["bytes"] > 0
    assert forgot["arguments"] == {"subject": "<hashed>"}
    assert forgot["changed"]["rows"] == 2
    assert forgot["changed"]["runs"] == ["r"]
    period = forgot["details"]["subject_hashes"][0].split(":")[1]
    key = load_key_provider(key_file=None).key(period)
    assert forgot["details"]["subject_hashes"] == [hash_value(key, period, SUBJECT)]
    assert init["arguments"]["action"] == "init"
    assert destroyed["arguments"]["period"] == "2020-01"

    raw = (Path(store.path) / "audit" / "audit.jsonl").read_bytes()
    assert SUBJECT.encode() not in raw
    assert hash_key.encode() not in raw
    assert main(["audit", "--command", "forget", "--store", store.root]) == 0
    listing = capsys.readouterr().out
    assert "forget" in listing
    assert "rows 2" in listing
    assert SUBJECT not in listing


def test_arguments_lose_their_secrets():
    public = audit.public_arguments({"store": "s3://key:hunter2@bucket/x", "subject": "x",
                                     "token": "abc", "dry_run": True, "handler": print,
                                     "webhook_secret": None})
    assert public == {"store": "s3://bucket/x", "subject": "<hashed>", "token": "<redacted>",
                      "dry_run": True, "webhook_secret": None}


def _append_many(root: str, worker: int) -> None:
    store = Store(root)
    for i in range(40):
        audit.record(store, "compact", arguments={"worker": worker, "i": i},
                     changed={"runs": [], "rows": i})


def test_appends_from_many_processes_are_whole_lines(store: Store):
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_append_many, args=(store.root, w)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = (Path(store.path) / "audit" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 160
    entries = [json.loads(line) for line in lines]
    assert sorted((e["arguments"]["worker"], e["arguments"]["i"]) for e in entries) == [
        (w, i) for w in range(4) for i in range(40)]
