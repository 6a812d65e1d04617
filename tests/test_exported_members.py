"""The public surface: every exported name resolves, and the list is deliberate."""

from __future__ import annotations

import subprocess
import sys

import streambench


def test_every_exported_name_resolves():
    for name in streambench.__all__:
        assert getattr(streambench, name) is not None, name


def test_all_lists_every_export_once():
    assert len(set(streambench.__all__)) == len(streambench.__all__)
    assert set(streambench.__all__) == {*streambench._EXPORTS, "__version__"}


def test_importing_streambench_has_no_side_effects():
    code = ("import sys, streambench; "
            "print(sorted(m for m in sys.modules if m.startswith('streambench')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['streambench', 'streambench._lazy']"  # nothing heavy
