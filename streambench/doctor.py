"""``streambench doctor``: check the set-up a user needs and say what to fix."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from streambench.cli_common import add_json, add_store, print_json, store_root

_REQUIRED = ("websockets", "aiohttp", "aiomqtt", "polars", "pyarrow", "pydantic", "pyyaml",
             "orjson", "fsspec", "papermill", "nbconvert", "altair", "ipywidgets")
_OPTIONAL = {"uvloop": "a faster event loop (pip install uvloop)",
             "dask": "multi-machine runs (pip install 'dask[distributed]')"}
_WANTED_FILES = 65_536  # enough for 10,000 connections plus the store


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, sys.version.split()[0], "" if ok else "use Python 3.11 or newer")


def check_packages() -> list[Check]:
    checks = []
    for name in _REQUIRED:
        try:
            checks.append(Check(f"package {name}", True, metadata.version(name)))
        except metadata.PackageNotFoundError:
            checks.append(Check(f"package {name}", False, "missing", "pip install -e ."))
    for name, why in _OPTIONAL.items():
        try:
            checks.append(Check(f"package {name}", True, metadata.version(name), required=False))
        except metadata.PackageNotFoundError:
            checks.append(Check(f"package {name}", False, "missing", why, required=False))
    return checks


def check_store(root: str) -> Check:
    from streambench.capture.store import Store

    try:
        store = Store(root)
        store.files.makedirs(store.path)
        probe = store.join(f".doctor-{uuid.uuid4().hex}")
        store.files.write_atomic(probe, b"ok")
        store.fs.rm(probe)
    except Exception as exc:  # any failure here is the answer, not a crash
        return Check("store writable", False, f"{root}: {exc}",
                     "pass --store DIR or set STREAMBENCH_STORE to a writable place")
    return Check("store writable", True, root)


def check_store_private(root: str) -> Check:
    """Warn about a local store that others (or, unless shared, the group) can read."""
    from streambench.capture.permissions import exposure
    from streambench.capture.store import Store

    try:
        store = Store(root)
    except Exception as exc:  # reported by check_store
        return Check("store private", False, f"{root}: {exc}", required=False)
    if not store.local or not os.path.isdir(store.path):
        return Check("store private", True, "not a local folder (access is the storage's "
                     "policy)" if not store.local else "no store yet", required=False)
    found = exposure(store.path)
    who = "others" if found.shared else "the group or others"
    if found.ok:
        return Check("store private", True,
                     f"{found.scanned} paths, shared with the group" if found.shared
                     else f"{found.scanned} paths, owner only", required=False)
    return Check("store private", False,
                 f"{found.count} paths readable by {who}, e.g. {found.examples[0]}",
                 f"streambench permissions --private --store {root} (or --share-group GROUP)",
                 required=False)


def check_open_files() -> Check:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ok = soft >= _WANTED_FILES or soft >= hard
    detail = f"soft {soft}, hard {hard}"
    fix = "" if soft >= _WANTED_FILES else (
        f"`ulimit -n {min(hard, _WANTED_FILES)}` before runs with thousands of connections "
        "(streambench raises the soft limit itself up to the hard one)")
    return Check("open-file limit", ok, detail, fix, required=False)


def check_mosquitto() -> Check:
    path = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)
    return Check("mosquitto (MQTT tests)", path is not None, path or "not found",
                 "" if path else "apt-get install mosquitto", required=False)


def check_port(port: int) -> Check:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return Check(f"port {port} free", False, "in use",
                         f"another program listens on 127.0.0.1:{port}; `serve --port 0` "
                         "or stop it", required=False)
    return Check(f"port {port} free", True, "127.0.0.1")


def run_checks(store: str) -> list[Check]:
    return [check_python(), *check_packages(), check_store(store), check_store_private(store),
            check_open_files(),
            check_mosquitto(), check_port(8765), check_port(1883)]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor", help="check the set-up and say what to fix")
    add_store(p)
    add_json(p)
    p.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    checks = run_checks(store_root(args.store))
    failed = [c for c in checks if not c.ok and c.required]
    if args.json:
        print_json({"ok": not failed, "checks": [c.__dict__ for c in checks]})
        return 1 if failed else 0
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(f"{mark}  {c.name:<28} {c.detail}" + (f"\n      fix: {c.fix}" if c.fix else ""))
    print("all required checks passed" if not failed else f"{len(failed)} required check(s) failed")
    return 1 if failed else 0
