from __future__ import annotations

from pathlib import Path

import pytest

from streambench.analyze import load_rules, parse_rules
from streambench.analyze.rules import RULE_KINDS
from streambench.errors import ConfigError


def test_default_rule_file_loads_and_covers_every_kind() -> None:
    rules = load_rules()
    assert {r.kind for r in rules} == set(RULE_KINDS)
    assert len({r.id for r in rules}) == len(rules)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"id": "s", "kind": "stall", "min_silence": "soon"}, "rule 's' field 'min_silence': "),
        ({"id": "k", "kind": "nonsense"}, "rule 'k' field 'kind': expected one of threshold"),
        ({"id": "t", "kind": "threshold", "metric": "p97", "op": ">", "value": 1},
         "rule 't' field 'metric'"),
        ({"id": "f", "kind": "stall", "fingerprint": "{rule}:{host}"},
         "rule 'f' field 'fingerprint': unknown placeholder {host}"),
        ({"id": "e", "kind": "error_pattern", "pattern": "(unclosed"},
         "rule 'e' field 'pattern': bad regular expression"),
        ({"id": "x", "kind": "stall", "colour": "red"}, "rule 'x' field 'colour': unknown field"),
        ({"id": "v", "kind": "stall", "severity": "meh"}, "rule 'v' field 'severity'"),
        ({"kind": "stall"}, "rule '#1' field 'id'"),
    ],
)  # fmt: skip
def test_bad_rules_name_the_rule_and_the_field(rule: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=r"^rules\.yaml: ") as caught:
        parse_rules({"rules": [rule]}, source="rules.yaml")
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_duplicate_ids_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rule 'a' field 'id': duplicate"):
        parse_rules({"rules": [{"id": "a", "kind": "stall"}, {"id": "a", "kind": "stall"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_rules(bad)
    bad.write_text("- just a list")
    with pytest.raises(ConfigError, match="expected a mapping with a 'rules' list"):
        load_rules(bad)
    with pytest.raises(ConfigError, match="cannot read rule file"):
        load_rules(tmp_path / "missing.yaml")


def test_defaults_apply_and_disabled_rules_are_dropped() -> None:
    rules = parse_rules({"defaults": {"window": "5s", "severity": "error"}, "rules": [
        {"id": "a", "kind": "stall"}, {"id": "b", "kind": "stall", "enabled": False},
        {"id": "c", "kind": "stall", "window": "2s"}]})  # fmt: skip
    assert [(r.id, r.window, r.severity) for r in rules] == [
        ("a", 5.0, "error"),
        ("c", 2.0, "error"),
    ]
