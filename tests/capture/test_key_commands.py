"""``streambench keys`` and the default key file: what the README's first command relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streambench.capture.keys import KeyFile, load_key_provider, read_key_file
from streambench.cli import main


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("STREAMBENCH_HASH_KEY")
    return tmp_path / "config"


def test_without_any_key_hashing_has_no_provider(config_home: Path):
    assert load_key_provider(key_file=None) is None


def test_keys_init_creates_the_default_key_file_once(config_home: Path, capsys):
    assert main(["keys", "init"]) == 0
    path = config_home / "streambench" / "hash-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert "created key file" in capsys.readouterr().out
    assert main(["keys", "init"]) == 0  # idempotent: the README's command can be re-run
    assert "key file exists" in capsys.readouterr().out
    assert isinstance(load_key_provider(key_file=None), KeyFile)


def test_keys_list_and_destroy(config_home: Path, capsys):
    main(["keys", "init"])
    provider = load_key_provider(key_file=None)
    assert provider is not None
    assert provider.key("2026-10") is not None
    capsys.readouterr()
    assert main(["keys", "destroy", "2026-10"]) == 0
    assert main(["keys", "list", "--json"]) == 0
    out = capsys.readouterr().out
    listing = json.loads(out[out.index("{"):])
    assert listing["destroyed"] == ["2026-10"]
    assert listing["held"] == []


def test_keys_for_another_file(tmp_path: Path, config_home: Path, capsys):
    path = tmp_path / "k.json"
    assert main(["keys", "init", "--file", str(path)]) == 0
    assert KeyFile(path).key("2026-11") is not None
    assert main(["keys", "destroy", "2026-11", "--file", str(path)]) == 0
    assert "key destroyed" in capsys.readouterr().out
    assert not (config_home / "streambench").exists()


def test_a_broken_key_file_is_one_clear_error(config_home: Path, capsys):
    path = config_home / "streambench" / "hash-keys.json"
    path.parent.mkdir(parents=True)
    path.write_text("not json")
    assert main(["keys", "init"]) == 2
    assert "is unreadable" in capsys.readouterr().err


@pytest.mark.parametrize("period", ["2026-13", "", "../../x", "2026-02-30", "2026-W54", "al"])
def test_destroying_something_that_is_not_a_period_is_one_line(config_home: Path, capsys,
                                                                period: str):
    main(["keys", "init"])
    capsys.readouterr()
    assert main(["keys", "destroy", period]) == 2
    out = capsys.readouterr()
    assert "done" not in out.out
    assert "destroyed" not in out.out
    assert out.err.count("\n") == 1
    assert f"period {period!r} is not a period id: expected YYYY-MM" in out.err
    assert read_key_file(config_home / "streambench" / "hash-keys.json")["destroyed"] == []


@pytest.mark.parametrize("period", ["2026-11", "2026-W45", "2026-11-03", "all"])
def test_every_kind_of_period_can_be_destroyed(config_home: Path, capsys, period: str):
    main(["keys", "init"])
    assert main(["keys", "destroy", period]) == 0
