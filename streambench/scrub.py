"""Secrets kept out of everything streambench writes: one scrubber at every exit.

Two kinds of secret reach a process:

- *known values*: whatever a scenario's ``${NAME}`` references resolve to
  (registered by :func:`streambench.scenario.secrets.resolve` as it resolves
  them) and credentials written literally in a scenario (registered when a
  scenario is loaded or run, :func:`streambench.scenario.secrets.register_scenario`);
- *credentials by shape*: the password in a URL's user info
  (``mqtt://u:s3cret@host``), query values under credential-like names
  (``?token=...``), and the value of credential headers echoed in text
  (``Authorization: ...``, ``X-Api-Key: ...``).

Every string that leaves the process passes :func:`scrub`: log records (the
filter in :mod:`streambench.logs`), the CLI's error line, manifests
(:meth:`streambench.capture.store.Store.write_manifest`) and captured rows
(the redactor, column-wise, with :func:`known_values` as literal patterns).
A known value is replaced wherever it appears, in its plain, percent-encoded,
JSON-escaped and (for ``user:password``) Basic-auth forms.

The known values are one set per process, on purpose (our rule is to pass
mappings explicitly, not to keep registries): a secret must be kept out of a
log line written from any thread, out of the exception text the CLI prints
after the run has unwound, and out of a manifest written by a worker process,
and no parameter reaches all of those. The set starts empty (nothing happens
on import), only grows, and holds values only: never where they came from.
Values shorter than :data:`MIN_LENGTH` characters are not searched for in free
text (they would mask every such pair of letters); a URL's password is removed
by shape whatever its length.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
MIN_LENGTH = 4

# Names of URL query parameters and header-like fields that carry credentials.
SENSITIVE_NAME = re.compile(
    r"auth|token|secret|key|passw|pwd|cookie|session|signature|sig$|credential", re.IGNORECASE
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@\"'\\<>]+)@")
_QUERY_VALUE = re.compile(r"([?&;]([^=&\s#\"'\\<>?;]+)=)([^&\s#\"'\\<>;]+)")
# (not after a "." : "target.headers.Authorization: ..." is a field path in an error line)
_HEADER_VALUE = re.compile(
    r"(?i)(?<!\.)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|api-key|x-auth-token"
    r"|x-access-token)(\s*[:=]\s*)([^\r\n,;\"\\<>]+)"
)
# Cheap tests before the regexes: a line without these cannot match them.
SHAPE_HINTS = ("://", "=", "authorization", "cookie", "api-key", "-token")


class KnownSecrets:
    """The secret values this process knows of, and their encoded forms."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._sorted: tuple[str, ...] = ()

    def add(self, value: str | None) -> None:
        """Register ``value`` (and its encodings) as a secret; short values are ignored."""
        if not value or len(value) < MIN_LENGTH:
            return
        forms = {value, quote(value, safe=""), quote(value), quote_plus(value),
                 _json_escaped(value), _json_escaped(value, ascii_only=True)}
        new = {f for f in forms if len(f) >= MIN_LENGTH} - self._values
        if new:
            with self._lock:
                self._values |= new
                self._pattern = None

    def add_credentials(self, user: str | None, password: str | None) -> None:
        """Register a password and the ``Basic`` header a client builds from the pair."""
        self.add(password)
        if password:
            pair = f"{user or ''}:{password}".encode()
            self.add(base64.b64encode(pair).decode())

    def clear(self) -> None:
        """Forget every value (between tests; a process that is done with its secrets)."""
        with self._lock:
            self._values.clear()
            self._pattern = None

    def values(self) -> tuple[str, ...]:
        """Every registered form, longest first (so a longer one wins an overlap)."""
        with self._lock:
            if self._pattern is None:
                self._sorted = tuple(sorted(self._values, key=lambda v: (-len(v), v)))
                self._pattern = re.compile("|".join(map(re.escape, self._sorted))) \
                    if self._sorted else re.compile(r"(?!)")
            return self._sorted

    def pattern(self) -> re.Pattern[str]:
        self.values()
        assert self._pattern is not None
        return self._pattern


KNOWN = KnownSecrets()


def register(value: str | None) -> None:
    """Register a secret value of this process (see :class:`KnownSecrets`)."""
    KNOWN.add(value)


def register_credentials(user: str | None, password: str | None) -> None:
    """Register ``password`` and the ``Basic`` header value made from ``user:password``."""
    KNOWN.add_credentials(user, password)


def register_url(url: str) -> None:
    """Register the password in ``url``'s user info and its credential-like query values."""
    match = _URL_USERINFO.search(url)
    if match:
        user, colon, password = match.group(2).partition(":")
        if colon:
            KNOWN.add_credentials(user, password)
        else:
            KNOWN.add(user)  # a token given as the user name (https://TOKEN@host)
    for query in _QUERY_VALUE.finditer(url):
        if SENSITIVE_NAME.search(query.group(2)):
            KNOWN.add(query.group(3))


def known_values() -> tuple[str, ...]:
    """The registered secret forms, longest first (for literal, column-wise replacing)."""
    return KNOWN.values()


def scrub(text: str) -> str:
    """``text`` with every known secret and every credential found by shape redacted.

    Idempotent; ``${NAME}`` templates are left as written (they are not secrets).
    """
    if not text:
        return text
    if KNOWN.values():
        text = KNOWN.pattern().sub(REDACTED, text)
    lowered = text.lower()
    if not any(hint in lowered for hint in SHAPE_HINTS):
        return text
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _QUERY_VALUE.sub(_query, text)
    return _HEADER_VALUE.sub(_header, text)


def scrub_obj(value: Any) -> Any:
    """A copy of a JSON-like value with :func:`scrub` applied to every string and key.

    A number whose digits hold a known secret becomes ``"<redacted>"``.
    """
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_obj(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and KNOWN.values():
        return REDACTED if scrub(str(value)) != str(value) else value
    return value


def scrub_all(texts: Iterable[str | None]) -> list[str | None]:
    """:func:`scrub` over many strings (None stays None)."""
    return [None if t is None else scrub(t) for t in texts]


def _userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    user, colon, password = userinfo.partition(":")
    if "${" in userinfo or REDACTED in (password, userinfo):
        return match.group(0)
    if colon:
        return f"{scheme}{user}:{REDACTED}@"
    return f"{scheme}{REDACTED}@"


def _query(match: re.Match[str]) -> str:
    value = match.group(3)
    if not SENSITIVE_NAME.search(match.group(2)) or "${" in value or value == REDACTED:
        return match.group(0)
    return match.group(1) + REDACTED


def _header(match: re.Match[str]) -> str:
    value = match.group(3)
    if "${" in value or value.strip() in ("", REDACTED):
        return match.group(0)
    return match.group(1) + match.group(2) + REDACTED


def _json_escaped(value: str, *, ascii_only: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)[1:-1]
