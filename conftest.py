"""Hermetic test runs: the suite never reads or writes the user's home or ./data.

Before anything is collected (so every test, fixture, subprocess, Jupyter
kernel and notebook under nbval inherits it), everything that tools derive
from the user's home points into one temporary directory: HOME itself, the
XDG base directories, IPython's and Jupyter's directories (no user kernelspec
or startup file is picked up), AWS's config and credential files, fsspec's
config. The default store is a temporary one (never ./data), and the hash key
comes from the environment (never the user's key file). The directory is
removed when the run ends.

``tests/test_hermetic.py`` runs part of the suite with a user key file in
place to show none of this leaks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

TEST_HASH_KEY = "test-only-hash-key-0123456789abcdef"
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
          "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "JUPYTER_PATH",
          "PYTHONSTARTUP", "STREAMBENCH_KEY_FILE")


def hermetic_environment(root: Path) -> dict[str, str]:
    """The variables that keep a process away from the user's own files."""
    home = root / "home"
    env = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local/share",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_STATE_HOME": home / ".local/state",
        "XDG_RUNTIME_DIR": root / "runtime",
        "IPYTHONDIR": home / ".ipython",
        "JUPYTER_CONFIG_DIR": home / ".jupyter",
        "JUPYTER_DATA_DIR": home / ".local/share/jupyter",
        "JUPYTER_RUNTIME_DIR": root / "runtime/jupyter",
        "JUPYTER_PLATFORM_DIRS": "1",
        "AWS_CONFIG_FILE": home / ".aws/config",
        "AWS_SHARED_CREDENTIALS_FILE": home / ".aws/credentials",
        "FSSPEC_CONFIG_DIR": home / ".config/fsspec",
        "STREAMBENCH_STORE": root / "store",
        "STREAMBENCH_HASH_KEY": TEST_HASH_KEY,
    }
    return {name: str(value) for name, value in env.items()}


def pytest_configure(config: pytest.Config) -> None:
    root = Path(tempfile.mkdtemp(prefix="streambench-tests-"))
    env = hermetic_environment(root)
    for path in ("HOME", "XDG_RUNTIME_DIR", "JUPYTER_RUNTIME_DIR"):
        Path(env[path]).mkdir(parents=True, exist_ok=True)
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    for name in _UNSET:
        os.environ.pop(name, None)
    os.environ.update(env)
    config.stash[_ROOT] = root


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_ROOT, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


_ROOT = pytest.StashKey[Path]()
