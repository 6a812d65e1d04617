"""Secrets in scenarios: ``${ENV_VAR}`` references, resolved late, never written out.

A scenario names its secrets instead of holding them::

    target:
      headers: {Authorization: "Bearer ${CHAT_TOKEN}"}
      password: ${MQTT_PASSWORD}

The model keeps the ``${...}`` templates as written. They are resolved only
when a connection is opened (:func:`resolve`, :func:`resolve_target`), in the
fields listed in :data:`SECRET_FIELDS`; ``${...}`` anywhere else is plain text.
:func:`public_dump` is the only way a scenario should reach a manifest, a log
or a report: templates stay templates and literal credentials become
``"<redacted>"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from streambench.errors import ConfigError
from streambench.scenario.synth import public_body
from streambench.scrub import SENSITIVE_NAME, register, register_credentials, register_url

if TYPE_CHECKING:
    from streambench.scenario.model import Scenario, Target

REDACTED = "<redacted>"
SECRET_FIELDS = ("target.url", "target.headers.*", "target.metadata.*", "target.username",
                 "target.password")
_HEADER_FIELDS = ("headers", "metadata")  # name -> value maps (gRPC calls them metadata)

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEME_VALUE = re.compile(r"^(bearer|basic|digest|token|apikey)\s+\S", re.IGNORECASE)
_TOKEN_LIKE = re.compile(r"^[A-Za-z0-9_\-+/=.~]{24,}$")


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (malformed ones included as written)."""
    return [match.group(1) for match in _REFERENCE.finditer(text)]


def template_problem(text: str) -> str | None:
    """Why ``text`` is not a valid template, or None (for the model's validators)."""
    for name in references(text):
        if not _NAME.fullmatch(name):
            return f"malformed reference ${{{name}}}: expected ${{NAME}} (letters, digits, _)"
    if "${" in _REFERENCE.sub("", text):
        return "unclosed ${ in text: expected ${NAME}"
    return None


def resolve(text: str, *, field: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every ``${NAME}`` replaced from ``env`` (default: ``os.environ``).

    Raises ConfigError naming ``field`` and the variable when one is not set
    or a reference is malformed. The error never contains a resolved value.
    Every value substituted is registered as a secret of this process
    (:mod:`streambench.scrub`), so it is scrubbed from whatever is written.
    """
    environ = os.environ if env is None else env
    problem = template_problem(text)
    if problem is not None:
        raise ConfigError(f"{field}: {problem}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{field}: environment variable {name} is not set")
        register(environ[name])
        return environ[name]

    return _REFERENCE.sub(substitute, text)


def resolve_target(target: Target, *, env: Mapping[str, str] | None = None) -> Target:
    """A copy of ``target`` with every secret field resolved; call when connecting.

    The result holds secrets: keep it in memory only, never dump or log it.
    """
    update: dict[str, Any] = {"url": resolve(target.url, field="target.url", env=env)}
    for key in _HEADER_FIELDS:
        headers: dict[str, str] | None = getattr(target, key, None)
        if headers is not None:
            update[key] = {name: resolve(value, field=f"target.{key}.{name}", env=env)
                           for name, value in headers.items()}
    for name in ("username", "password"):
        value = getattr(target, name, None)
        if value is not None:
            update[name] = resolve(value, field=f"target.{name}", env=env)
    try:
        return type(target).model_validate({**target.model_dump(), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        cause_loc = getattr(first.get("ctx", {}).get("error"), "loc", ())
        where = ".".join(str(part) for part in ("target", *first["loc"], *cause_loc))
        # The message names the field only: the resolved value may be a secret.
        hint = f" (it must fit protocol {target.protocol})" if where == "target.url" else ""
        raise ConfigError(f"{where}: invalid after resolving ${{...}} references{hint}") from None


def register_scenario(scenario: Scenario, *, env: Mapping[str, str] | None = None) -> None:
    """Register every credential of ``scenario`` as a secret of this process.

    Call where a scenario enters a process (loading it, applying overrides,
    starting a run): the values its ``${NAME}`` references have in ``env``
    (default ``os.environ``; unset ones are skipped), the password in the URL's
    user info and the ``Basic`` header made from it, credential-like query
    values, a literal ``password`` and header values that look like
    credentials. :func:`streambench.scrub.scrub` then removes them from
    everything written. Nothing is resolved into the model.
    """
    environ = os.environ if env is None else env
    for path, text in _secret_strings(scenario.target):
        if template_problem(text) is not None:
            continue
        value = _REFERENCE.sub(lambda m: environ.get(m.group(1), m.group(0)), text)
        for name in references(text):
            register(environ.get(name))
        if path == "target.url":
            register_url(value)
        elif path == "target.password":
            register_credentials(getattr(scenario.target, "username", None), value)
        elif path.startswith(("target.headers.", "target.metadata.")) \
                and _looks_secret(path.split(".", 2)[2], value):
            register(value)
            register(value.split(None, 1)[-1])  # the token of "Bearer <token>"


def secret_fields(scenario: Scenario) -> list[tuple[str, str]]:
    """``(field path, variable name)`` for every ``${NAME}`` in the secret fields."""
    return [(path, name) for path, text in _secret_strings(scenario.target)
            for name in references(text)]


def missing(scenario: Scenario, *, env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The :func:`secret_fields` whose variable is not set in ``env`` (default os.environ)."""
    environ = os.environ if env is None else env
    return [(path, name) for path, name in secret_fields(scenario) if name not in environ]


def public_dump(scenario: Scenario) -> dict[str, Any]:
    """The scenario as a JSON-able dict that is safe to write anywhere.

    ``${...}`` templates are kept as written (never resolved). Literal values
    that look like credentials are replaced by ``"<redacted>"``: the password,
    header values under credential-like names (Authorization, Cookie, *token*,
    *key*, *secret*, ...) or shaped like ``Bearer ...`` or a long token, a
    password inside the URL and URL query values under credential-like names. gRPC
    ``metadata`` is treated as headers.
    """
    dump = scenario.model_dump(mode="json")
    dump["message"]["body"] = public_body(dump["message"]["body"])
    target = dump["target"]
    target["url"] = public_url(target["url"])
    for key in _HEADER_FIELDS:
        if key in target:
            target[key] = {name: REDACTED if _looks_secret(name, value) else value
                           for name, value in target[key].items()}
    if target.get("password") is not None and "${" not in target["password"]:
        target["password"] = REDACTED
    for step in target.get("on_connect") or ():  # an auth step's literal token
        step["send"] = _public_value(step.get("send"))
    return dump


def _public_value(value: Any, name: str = "") -> Any:
    """A step's message with literal values under credential-like keys redacted."""
    if isinstance(value, dict):
        return {key: _public_value(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_public_value(item, name) for item in value]
    if isinstance(value, str) and name and _looks_secret(name, value):
        return REDACTED
    return value


def resolve_value(value: Any, *, field: str, env: Mapping[str, str] | None = None) -> Any:
    """``value`` (a message: text, or JSON with text inside) with ``${NAME}`` resolved."""
    if isinstance(value, str):
        return resolve(value, field=field, env=env) if "${" in value else value
    if isinstance(value, dict):
        return {key: resolve_value(item, field=f"{field}.{key}", env=env)
                for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_value(item, field=f"{field}[{i}]", env=env)
                for i, item in enumerate(value)]
    return value


def public_url(url: str) -> str:
    """``url`` with a literal password and credential-like query values redacted."""
    if "@" not in url and "?" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon and "${" not in password:
            netloc = f"{user}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _looks_secret(k, v) else v) for k, v in pairs],
                          safe="<>${}")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub_argv(argv: Sequence[str]) -> list[str]:
    """A command line safe to record: values of ``name=value`` arguments and URL secrets
    removed (``--header Authorization=...``, ``--target=mqtt://u:pw@host``, a bare URL)."""
    return [_scrub_arg(arg) for arg in argv]


def _scrub_arg(arg: str) -> str:
    if arg.startswith("-"):
        flag, equals, value = arg.partition("=")
        return f"{flag}={_scrub_arg(value)}" if equals else arg
    if "://" in arg:
        return public_url(arg)
    if "=" in arg:
        return arg.split("=", 1)[0] + "=" + REDACTED
    return arg


def _looks_secret(name: str, value: str) -> bool:
    if "${" in value or not value:
        return False
    if SENSITIVE_NAME.search(name) or _SCHEME_VALUE.match(value):
        return True
    letters_and_digits = any(c.isalpha() for c in value) and any(c.isdigit() for c in value)
    return bool(_TOKEN_LIKE.match(value)) and letters_and_digits


def _secret_strings(target: Target) -> Iterator[tuple[str, str]]:
    yield "target.url", target.url
    for key in _HEADER_FIELDS:
        for name, value in getattr(target, key, {}).items():
            yield f"target.{key}.{name}", value
    for name in ("username", "password"):
        value = getattr(target, name, None)
        if value is not None:
            yield f"target.{name}", value
