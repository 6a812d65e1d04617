"""Secrets: ``${ENV}`` resolved late; public_dump never carries a secret."""

from __future__ import annotations

import json

import pytest

from streambench.errors import ConfigError
from streambench.scenario import parse_scenario, public_dump, resolve, resolve_target, secret_fields
from streambench.scenario.secrets import missing, public_url

SCENARIO = """\
name: s
target:
  protocol: mqtt  # over WebSockets: headers and a password
  url: wss://chat.example.test/room?channel=${CHANNEL}
  headers:
    Authorization: "Bearer ${API_TOKEN}"
    X-Client: streambench
  username: bot
  password: ${BOT_PASSWORD}
load: {rate: 1, duration: 1}
"""

LITERALS = """\
name: s
target:
  protocol: mqtt
  url: wss://bot:hunter2-literal@chat.example.test/room?token=tok-literal&room=7
  headers:
    Authorization: Bearer abc-literal-123
    Cookie: session=cookie-literal
    X-Api-Key: key-literal
    X-Signed: 0123456789abcdefABCDEF0123456789
    Content-Type: application/json
    X-Client: streambench
  username: bot
  password: pw-literal
load: {rate: 1, duration: 1}
"""


def test_resolve_substitutes_every_reference() -> None:
    env = {"A": "1", "B_2": "two"}
    assert resolve("x${A}y${B_2}${A}", field="f", env=env) == "x1ytwo1"
    assert resolve("no references", field="f", env={}) == "no references"


def test_missing_variable_names_field_and_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve("Bearer ${API_TOKEN}", field="target.headers.Authorization", env={"OTHER": "x"})
    assert str(caught.value) == \
        "target.headers.Authorization: environment variable API_TOKEN is not set"


def test_resolve_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMBENCH_TEST_SECRET", "s3cret")
    assert resolve("${STREAMBENCH_TEST_SECRET}", field="f") == "s3cret"


@pytest.mark.parametrize("text", ["${A-B}", "${}", "${1X}", "abc ${OPEN"])
def test_malformed_references_are_errors(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^target.password: (malformed|unclosed)"):
        resolve(text, field="target.password", env={})


def test_secret_fields_and_missing() -> None:
    scenario = parse_scenario(SCENARIO)
    assert secret_fields(scenario) == [
        ("target.url", "CHANNEL"),
        ("target.headers.Authorization", "API_TOKEN"),
        ("target.password", "BOT_PASSWORD"),
    ]
    assert missing(scenario, env={"CHANNEL": "c", "API_TOKEN": "t"}) == [
        ("target.password", "BOT_PASSWORD")
    ]


def test_resolve_target_resolves_and_keeps_the_scenario_untouched() -> None:
    scenario = parse_scenario(SCENARIO)
    env = {"CHANNEL": "general", "API_TOKEN": "tok", "BOT_PASSWORD": "pw"}
    target = resolve_target(scenario.target, env=env)
    assert target.url == "wss://chat.example.test/room?channel=general"
    assert target.headers == {"Authorization": "Bearer tok", "X-Client": "streambench"}
    assert (target.username, target.password) == ("bot", "pw")
    assert scenario.target.password == "${BOT_PASSWORD}"


def test_resolved_url_must_still_fit_the_protocol() -> None:
    scenario = parse_scenario("name: s\ntarget: {url: '${URL}'}\nload: {rate: 1, duration: 1}\n")
    with pytest.raises(ConfigError, match=r"^target\.url: invalid after resolving") as caught:
        resolve_target(scenario.target, env={"URL": "http://secret-host/"})
    assert "secret-host" not in str(caught.value)


def test_public_dump_keeps_templates_even_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL", "chan-value-xyz")
    monkeypatch.setenv("API_TOKEN", "token-value-xyz")
    monkeypatch.setenv("BOT_PASSWORD", "password-value-xyz")
    dump = public_dump(parse_scenario(SCENARIO))
    text = json.dumps(dump)
    assert "value-xyz" not in text
    assert dump["target"]["headers"]["Authorization"] == "Bearer ${API_TOKEN}"
    assert dump["target"]["password"] == "${BOT_PASSWORD}"
    assert dump["target"]["url"] == "wss://chat.example.test/room?channel=${CHANNEL}"


def test_public_dump_redacts_literal_credentials() -> None:
    dump = public_dump(parse_scenario(LITERALS))
    assert "literal" not in json.dumps(dump)
    assert "0123456789abcdef" not in json.dumps(dump)
    headers = dump["target"]["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Client"] == "streambench"
    assert dump["target"]["username"] == "bot"
    assert dump["target"]["url"] == \
        "wss://bot:<redacted>@chat.example.test/room?token=<redacted>&room=7"


def test_public_dump_is_json_and_complete() -> None:
    dump = public_dump(parse_scenario(SCENARIO))
    assert json.loads(json.dumps(dump)) == dump
    assert set(dump) == {"name", "description", "seed", "target", "load", "message", "capture",
                         "slo", "faults", "messages", "replies", "stream", "variables", "preset",
                         "network_faults", "fanout"}


@pytest.mark.parametrize("url", ["embedded", "${URL}", "ws://127.0.0.1:8765/echo",
                                 "ws://u:${P}@127.0.0.1/x?token=${T}"])
def test_public_url_leaves_safe_urls_alone(url: str) -> None:
    assert public_url(url) == url


def test_public_dump_keeps_the_body_shape_and_placeholders_not_literal_values():
    scenario = parse_scenario(
        "name: s\nload: {rate: 1, duration: 1}\nmessage:\n  body:\n"
        "    user: {id: u-4711, name: Zebulon Quixote, card: 4111111111111111}\n"
        "    text: 'order {{int}} for {{name}}'\n    ok: true\n")
    body = public_dump(scenario)["message"]["body"]
    assert body == {"user": {"id": "<text:6>", "name": "<text:15>", "card": "<number>"},
                    "text": "<text:6>{{int}}<text:5>{{name}}", "ok": True}
