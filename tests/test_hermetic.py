"""The suite is hermetic: a user's own set-up (a key file, a store, kernels) changes nothing.

The README's first command (``streambench keys init && streambench run ...``)
leaves a key file in the user's home and runs in ./data; its second command
must then pass every test. Here the first command's leftovers are planted in
a fake home and the key-sensitive tests run in a child pytest that believes it
is that user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TEST_HASH_KEY

ROOT = Path(__file__).resolve().parents[1]


def test_this_run_does_not_see_the_users_home() -> None:
    home = Path(os.environ["HOME"])
    assert home.name == "home"
    assert home.parent.name.startswith("streambench-tests-")
    assert Path(os.environ["STREAMBENCH_STORE"]).parent == home.parent
    assert os.environ["STREAMBENCH_HASH_KEY"] == TEST_HASH_KEY
    for name in ("XDG_CONFIG_HOME", "IPYTHONDIR", "JUPYTER_DATA_DIR", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "FSSPEC_CONFIG_DIR"):
        assert Path(os.environ[name]).is_relative_to(home.parent), name


def test_the_key_tests_pass_with_a_user_key_file_present(tmp_path: Path) -> None:
    user_home = tmp_path / "user"
    # a fresh pytest, not a worker of this one (xdist's PYTEST_XDIST_* variables)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["HOME"] = str(user_home)
    for name in ("XDG_CONFIG_HOME", "STREAMBENCH_HASH_KEY", "STREAMBENCH_STORE"):
        env.pop(name)
    # in the user's own working folder: `keys init` records itself in ./data's audit log
    keys = subprocess.run([sys.executable, "-m", "streambench", "keys", "init"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert keys.returncode == 0, keys.stderr
    key_file = user_home / ".config/streambench/hash-keys.json"
    assert json.loads(key_file.read_text())  # the user really has a key file now

    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/capture/test_keys.py", "tests/capture/test_retention.py",
         "tests/test_hermetic.py::test_this_run_does_not_see_the_users_home"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-2000:]
    assert " passed" in child.stdout
