"""A private store by default, a documented way to share it, doctor's warning (issue 15 item 3)."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path

import pytest

from streambench.capture.keys import create_key_file
from streambench.cli import main
from tests.capture.storetools import cli
from tests.helpers import write_scenario


def modes(root: Path) -> dict[str, tuple[str, int]]:
    """Every path below (and including) ``root``: (kind, permission bits)."""
    found = {".": ("dir", stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        st = path.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        found[str(path.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode))
    return found


def wrong(root: Path, *, directory: int, file: int) -> dict[str, str]:
    return {p: oct(m) for p, (kind, m) in modes(root).items()
            if m != (directory if kind == "dir" else file)}


@pytest.fixture(scope="module")
def used_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store made by real commands: runs (one sharded, with faults), anomalies (the KB),
    compaction, prune and forget (the audit log)."""
    base = tmp_path_factory.mktemp("private")
    old = os.umask(0o022)  # the usual umask: streambench must not rely on it
    try:
        root = base / "store"
        path = write_scenario(base / "s.yaml", faults=[{"kind": "drop", "probability": 0.1}])
        # worker processes create folders and files too; the second run is in this one
        done = cli("run", str(path), "--workers", "2", "--store", str(root))
        assert done.returncode == 0, done.stderr
        assert main(["run", str(path), "--workers", "1", "--store", str(root)]) == 0
        for args in (["anomalies", "latest"], ["compact", "latest"], ["prune"],
                     ["forget", "--subject", "u-1"]):
            assert main([*args, "--store", str(root)]) == 0, args
    finally:
        os.umask(old)
    return root


def test_every_path_of_a_new_store_is_private(used_store: Path):
    found = modes(used_store)
    assert any(p.startswith("kb/") for p in found)  # the knowledge base is covered too
    assert any(p.startswith("faults/") for p in found)
    assert "audit/audit.jsonl" in found
    assert wrong(used_store, directory=0o700, file=0o600) == {}


def test_a_store_can_be_shared_with_a_group_and_made_private_again(used_store: Path,
                                                                  tmp_path: Path):
    group = grp.getgrgid(os.getgid()).gr_name
    shared = tmp_path / "shared"
    os.rename(used_store, shared)
    try:
        assert main(["permissions", "--share-group", group, "--store", str(shared)]) == 0
        assert wrong(shared, directory=0o2770, file=0o660) == {}
        assert {p.stat().st_gid for p in shared.rglob("*")} == {os.getgid()}
        path = write_scenario(tmp_path / "s.yaml")
        assert main(["run", str(path), "--workers", "1", "--store", str(shared)]) == 0
        assert wrong(shared, directory=0o2770, file=0o660) == {}  # new paths follow the root
        assert main(["permissions", "--private", "--store", str(shared)]) == 0
        assert wrong(shared, directory=0o700, file=0o600) == {}
    finally:
        os.rename(shared, used_store)


def test_doctor_warns_about_a_store_others_can_read(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    root = tmp_path / "old-store"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "r.json").write_text("{}")
    for path in (root, root / "runs"):
        path.chmod(0o755)
    (root / "runs" / "r.json").chmod(0o644)
    main(["doctor", "--json", "--store", str(root)])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["store private"]["ok"] is False
    assert "3 paths readable by the group or others" in checks["store private"]["detail"]
    assert "streambench permissions --private" in checks["store private"]["fix"]
    assert main(["permissions", "--private", "--store", str(root)]) == 0
    capsys.readouterr()
    main(["doctor", "--json", "--store", str(root)])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["store private"]["ok"] is True


def test_key_files_and_their_folder_are_private(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("STREAMBENCH_STORE", str(tmp_path / "store"))
    assert main(["keys", "init"]) == 0
    folder = tmp_path / "config" / "streambench"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "hash-keys.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(create_key_file(tmp_path / "k.json").stat().st_mode) == 0o600
