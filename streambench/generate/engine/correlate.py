"""Classifying replies: sans-I/O, pure functions of the reply's text and the scenario.

A reply is read once (``orjson.loads``; whitespace, key order and nesting
never matter) and then classified by the scenario's ``replies`` section:

1. the ``rules``, in order: the first whose ``match`` (field values) or
   ``pattern`` (a regular expression on the raw text) fits decides what the
   reply is (``as``: ``answer``, ``error``, ``end``, ``other`` or ``push``);
2. a reply no rule took is an *answer*: its correlation id is read at
   ``replies.id`` (a path such as ``reply_to`` or ``data.request_id``); a
   reply that carries none is ``garbage``, and one whose id is set at
   ``replies.error`` (not null, false, empty) is an error answer.

:class:`Classifier` returns a :class:`Verdict`; the engine's
:class:`~streambench.generate.engine.replies.ReplyMatcher` turns verdicts into
rows. Adding a class of reply (a fan-out ``delivery``, a ``push``) is a new
``as`` value here and one handler there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streambench.limits import too_deep

Path = tuple[str | int, ...]
UNSET: tuple[Any, ...] = (None, False, "", {}, [])  # an error field holding one of these is not set
NOT_JSON = object()  # what a reply that does not parse as JSON reads as
_MISSING = object()


def parse_path(text: str) -> Path:
    """``"data.request_id"`` -> ``("data", "request_id")``; ``"items.0.id"`` indexes a list.

    Raises ValueError for an empty path or an empty segment (``a..b``).
    """
    if not text or any(not part for part in text.split(".")):
        raise ValueError(f"bad path {text!r}: expected names joined by '.', such as "
                         "reply_to or data.request_id")
    return tuple(int(part) if part.isdigit() else part for part in text.split("."))


def lookup(doc: Any, path: Path) -> Any:
    """The value at ``path`` in a parsed JSON document, or ``None`` when absent."""
    for part in path:
        if isinstance(doc, dict):
            doc = doc.get(part if isinstance(part, str) else str(part))
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
        else:
            return None
    return doc


def id_text(value: Any) -> str | None:
    """A correlation id as the text the engine keys messages by (``17`` -> ``"17"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def is_set(value: Any) -> bool:
    """An ``error`` field counts only when set: not missing, null, false, empty."""
    return value not in UNSET


def error_text(value: Any) -> str:
    """The server's error as one line: its text, its ``message``, or its JSON."""
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        code = value.get("code")
        return f"{value['message']} (code {code})" if code is not None else value["message"]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:  # GraphQL: a list of errors
        return "; ".join(error_text(item) for item in value[:5])
    return orjson.dumps(value).decode()[:200]


def parse(text: str | bytes) -> Any:
    """The reply as JSON, or :data:`NOT_JSON` (also when it nests deeper than
    :data:`~streambench.limits.JSON_DEPTH`: nothing after may recurse through it)."""
    if too_deep(text):
        return NOT_JSON
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return NOT_JSON


@dataclass(frozen=True)
class Match:
    """A compiled match: every ``(path, allowed values)`` holds, and ``pattern`` finds.

    A value of ``None`` among the allowed ones also matches a missing field.
    """

    fields: tuple[tuple[Path, tuple[Any, ...]], ...] = ()
    pattern: re.Pattern[str] | None = None

    @classmethod
    def build(cls, fields: Mapping[str, Any] | None = None, pattern: str | None = None
              ) -> Match:
        compiled = tuple((parse_path(path), tuple(value) if isinstance(value, list | tuple)
                          else (value,)) for path, value in (fields or {}).items())
        return cls(compiled, re.compile(pattern) if pattern is not None else None)

    def __call__(self, doc: Any, text: str) -> bool:
        if self.pattern is not None and self.pattern.search(text) is None:
            return False
        if self.fields and doc is NOT_JSON:
            return False
        for path, allowed in self.fields:
            value = lookup(doc, path)
            if not any(same(value, a) for a in allowed):
                return False
        return True


def same(value: Any, expected: Any) -> bool:
    """JSON equality where ``true`` is not ``1``."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return value is expected
    return bool(value == expected)


@dataclass(frozen=True)
class Rule:
    """One ``replies.rules`` entry, compiled."""

    name: str
    match: Match
    action: str = "other"  # answer | error | end | other | push (see the module docstring)
    id: Path | None = None  # where this rule's replies carry the id (else replies.id)
    error: Path | None = None  # where an error text is (else replies.error)


@dataclass(frozen=True)
class Verdict:
    """What a reply is. ``action`` is ``answer``, ``error``, ``end``, ``other``, ``push``
    or ``garbage``; ``cid`` the id it carries (None when in-order matching applies)."""

    action: str
    cid: str | None = None
    error: str | None = None
    rule: Rule | None = None
    doc: Any = None


class Classifier:
    """Classifies replies for one scenario (see the module docstring). Immutable.

    ``id_path`` None means replies carry no id: answers are matched in send
    order (the engine does that; the verdict's cid is None).
    """

    __slots__ = ("error_path", "id_path", "id_text", "rules")

    def __init__(self, *, id_path: Path | None, error_path: Path | None = ("error",),
                 rules: Sequence[Rule] = ()) -> None:
        self.id_path = id_path
        self.error_path = error_path
        self.rules = tuple(rules)
        # A reply that is not JSON (a truncated echo) may still show a top-level id
        self.id_text = None
        if id_path is not None and len(id_path) == 1:
            key = re.escape(orjson.dumps(str(id_path[0])).decode())
            self.id_text = re.compile(key + r'\s*:\s*(?:"([^"\\]*)"|(-?\d+))')

    def classify(self, text: str, doc: Any = _MISSING) -> Verdict:
        """The verdict on one reply (``doc``: the reply already parsed, if it was)."""
        if doc is _MISSING:
            doc = parse(text)
        for rule in self.rules:
            if rule.match(doc, text):
                pattern = rule.match.pattern
                if pattern is not None and "id" in pattern.groupindex:  # PONG (?P<id>\S+)
                    found = pattern.search(text)
                    return Verdict(rule.action, found.group("id") if found else None,
                                   rule=rule, doc=doc)
                if rule.action in ("other", "end", "push") and rule.id is None:
                    return Verdict(rule.action, self._id(doc, self.id_path), rule=rule, doc=doc)
                return self._answer(doc, rule.id or self.id_path, rule)
        if doc is NOT_JSON:
            ids = [] if self.id_text is None else list(self.id_text.finditer(text))
            if ids:  # the last occurrence, as the messages streambench sends carry it
                return Verdict("answer", ids[-1].group(1) or ids[-1].group(2), doc=doc)
            return Verdict("garbage", error="reply is not JSON", doc=doc)
        return self._answer(doc, self.id_path, None)

    def _answer(self, doc: Any, path: Path | None, rule: Rule | None) -> Verdict:
        cid = None
        if path is not None:
            cid = id_text(lookup(doc, path)) if doc is not NOT_JSON else None
            if cid is None:
                return Verdict("garbage", error=self.missing_id(doc, path), rule=rule, doc=doc)
        action = "answer" if rule is None else rule.action
        if action not in ("answer", "error"):
            return Verdict(action, cid, rule=rule, doc=doc)
        value = None
        error_path = rule.error if rule is not None and rule.error else self.error_path
        if error_path is not None and doc is not NOT_JSON:
            value = lookup(doc, error_path)
        if is_set(value):
            return Verdict("error", cid, error_text(value), rule, doc)
        if action == "error":  # a rule said so; the reply has no error text of its own
            return Verdict("error", cid, f"error reply ({rule.name if rule else 'error'})",
                           rule, doc)
        return Verdict("answer", cid, rule=rule, doc=doc)

    @staticmethod
    def _id(doc: Any, path: Path | None) -> str | None:
        return None if path is None or doc is NOT_JSON else id_text(lookup(doc, path))

    @staticmethod
    def missing_id(doc: Any, path: Path) -> str:
        """Why no id was found, naming what the reply has instead (key names only)."""
        where = ".".join(str(p) for p in path)
        if not isinstance(doc, dict):
            kind = "a list" if isinstance(doc, list) else "not a JSON object"
            return f"no id at {where!r}: the reply is {kind}"
        value = lookup(doc, path)
        if value is not None:
            return f"no id at {where!r}: it holds {type(value).__name__}, not text or a number"
        return f"no id at {where!r}; the reply has {shape(doc)}"


def shape(doc: Any, *, limit: int = 12) -> str:
    """The key paths of a JSON object (``ok, reply_to, data.id``): no values, for diagnosis."""
    paths: list[str] = []

    def walk(value: Any, prefix: str) -> None:
        for key, item in value.items():
            if len(paths) >= limit:
                return
            name = f"{prefix}{key}"
            if isinstance(item, dict) and item:
                walk(item, f"{name}.")
            else:
                paths.append(name)

    walk(doc, "")
    more = ", ..." if len(paths) >= limit else ""
    return (", ".join(paths) + more) if paths else "no fields"
