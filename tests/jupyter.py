"""Real Jupyter kernels and a real JupyterLab for the tests (not a test module).

Everything runs on 127.0.0.1 with its configuration, data and IPython
directories under the test's tmp_path (never the user's home), and every
process is ended by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]  # the streambench under test


def jupyter_env(home: Path) -> dict[str, str]:
    """Our environment with every Jupyter/IPython directory under ``home``."""
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime", "IPYTHONDIR": "ipython"}  # fmt: skip
    env = dict(os.environ)
    for name, sub in dirs.items():
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["JUPYTERLAB_SETTINGS_DIR"] = str(home / "lab-settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(home / "lab-workspaces")
    # no "get notified about Jupyter news?" toast over the page (and no fetching it)
    news = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True, exist_ok=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def kernel(home: Path, *, cwd: Path) -> Iterator[Any]:
    """A started IPython kernel and its blocking client; shut down (by pid) after."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=jupyter_env(home), cwd=str(cwd))
    client = km.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield km, client
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def execute(client: Any, code: str, *, timeout: float = 60) -> dict[str, Any]:
    """Run ``code`` in the kernel; the reply's content (raises on a Python error)."""
    reply = client.execute_interactive(code, timeout=timeout, output_hook=lambda _msg: None)
    content = dict(reply["content"])
    if content["status"] != "ok":
        raise AssertionError(f"{content.get('ename')}: {content.get('evalue')}")
    return content


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid``."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


@dataclass
class Lab:
    """A JupyterLab server of the test: its URL (with the token) and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def jupyterlab(home: Path, *, root: Path) -> Iterator[Lab]:
    """``jupyter lab`` on 127.0.0.1 serving ``root``; stopped (by pid) after."""
    port, token = free_port(), "streambench-test-token"
    env = jupyter_env(home)
    config = {"ServerApp": {"ip": "127.0.0.1", "port": port, "open_browser": False,
                            "root_dir": str(root), "allow_root": os.geteuid() == 0},
              "IdentityProvider": {"token": token},
              # nothing fetched from outside: no news, no update check, no extension index
              "LabApp": {"news_url": None, "extension_manager": "readonly",
                         "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}
    config_file = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    config_file.write_text(json.dumps(config))
    log = (home / "lab.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "jupyterlab"], env=env, cwd=root,
                               stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=_exit_with_parent)  # noqa: PLW1509 (a test's child)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/api/status?token={token}"), timeout=60,
                 what="JupyterLab to answer")
        yield Lab(url=url, token=token, root=root, process=process)
    finally:
        stragglers = descendants(process.pid)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for child in stragglers:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        log.close()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http://127.0.0.1)
            return bool(response.status == 200)
    except OSError:
        return False


def _exit_with_parent() -> None:
    """In the child: SIGTERM when the test process dies (even killed by a timeout), so a
    JupyterLab (which then shuts its kernels down) never outlives the test run."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
