"""Deterministic synthetic data for ``{{placeholder}}`` strings in message bodies.

A body is compiled once per run into a :class:`BodyPool`: ``pool`` distinct
bodies rendered ahead of time from the scenario's seed, stored as JSON bytes
without their closing brace. The send loop then only appends the correlation
fields (:meth:`BodyPool.frame`), so synthetic data costs nothing on the hot
path and a run is reproducible from its seed.

Placeholders (``{{name}}`` or ``{{name:ARG:ARG}}``, spaces inside the braces
allowed) are listed in :data:`PLACEHOLDERS`. A string that is exactly one
placeholder becomes a typed value (``"{{int}}"`` -> ``42``); inside a longer
string the value is interpolated as text (``"order {{int}}"`` -> ``"order 42"``).
Dictionary keys are literal. The reference is docs/scenarios.md.

This module is free of the scenario model on purpose: the model's validator
calls :func:`check_body`, so nothing here may import it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import random
import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from streambench.errors import ConfigError
from streambench.limits import BODY_DEPTH, PLACEHOLDER_CHARS, POOL_BODIES, POOL_BYTES

Loc = tuple[str | int, ...]  # a position inside the body: keys and list indexes

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


class BodyProblem(ValueError):
    """The body has bad placeholders or reserved keys; carries every problem found.

    ``problems`` holds ``(loc, message)`` pairs, ``loc`` relative to the body
    (``("user", "name")`` or ``("items", 0)``), so the scenario loader can point
    at the exact field and line.
    """

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        first_loc, first_msg = problems[0]
        where = _format_loc(("body", *first_loc))
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{where}: {first_msg}{more}")


BUILTIN = ("cid", "seq", "conn")
"""Placeholders filled per message or connection: the correlation id, the message's
sequence number and the connection index (besides the scenario's own ``variables``)."""
ANY_NAME = frozenset({"*"})  # check_body: leave names that are no generator to the caller
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"  # private-use characters around a slot's name


def check_body(body: dict[str, Any] | str, *, cid_field: str | None, seq_field: str | None,
               names: frozenset[str] | set[str] = frozenset(BUILTIN)) -> None:
    """Raise :class:`BodyProblem` listing every unknown or malformed placeholder,
    any key that collides with the correlation fields, text that is not valid
    UTF-8, and a body nested deeper than :data:`~streambench.limits.BODY_DEPTH`.

    ``names`` are the placeholders filled later (``{{cid}}``, variables); with
    :data:`ANY_NAME`, a name that is no generator is left for the caller to judge.
    """
    depth = nesting(body)
    if depth > BODY_DEPTH:
        raise BodyProblem([((), f"nested {depth} levels deep; at most {BODY_DEPTH} "
                            "(deeper messages could not be captured)")])
    problems: list[tuple[Loc, str]] = []
    for key in (cid_field, seq_field):
        if isinstance(body, dict) and key is not None and _has_path(body, key):
            problems.append((tuple(key.split(".")), f"key {key!r} is reserved: streambench "
                             "adds it to every message (rename the key, or set "
                             "message.cid_field/seq_field)"))
    for loc, value in _leaves(body, (), problems):
        if isinstance(value, str):
            if (bad := text_problem(value)) is not None:
                problems.append((loc, bad))
                continue
            for match in _PLACEHOLDER.finditer(value):
                message = _placeholder_problem(match.group(1), names)
                if message is not None:
                    problems.append((loc, message))
        else:
            message = _json_problem(value)
            if message is not None:
                problems.append((loc, message))
    if problems:
        raise BodyProblem(problems)


def placeholder_names(value: Any) -> Iterator[tuple[Loc, str]]:
    """Every ``{{name}}`` in a body (or a step's message) with its position."""
    for loc, leaf in _leaves(value, (), []):
        if isinstance(leaf, str):
            for match in _PLACEHOLDER.finditer(leaf):
                yield loc, _split(match.group(1))[0]


def _has_path(body: dict[str, Any], path: str) -> bool:
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def pool_problem(body: dict[str, Any] | str, pool: int) -> str | None:
    """Why ``pool`` bodies like ``body`` are too many to hold in memory, or None.

    Call after :func:`check_body` passed. One body is rendered to estimate the size.
    """
    if pool > POOL_BODIES:
        return f"expected at most {POOL_BODIES:,} bodies, got {pool:,}"
    late = frozenset(name for _, name in placeholder_names(body) if name not in GENERATORS)
    size = len(orjson.dumps(_compile(body, late)(random.Random("streambench-size")))) + 40
    if pool * size > POOL_BYTES:
        return (f"{pool:,} bodies of about {size:,} bytes need {pool * size / 2**20:,.0f} MiB; "
                f"at most {POOL_BYTES >> 20} MiB: lower message.pool to "
                f"{max(1, POOL_BYTES // size):,} or less")
    return None


def public_body(body: Any) -> Any:
    """``body`` as a manifest keeps it: placeholders as written, literal text as
    ``<text:N>``, literal numbers as ``<number>`` (true, false and null kept).

    A value written into a scenario's body may be personal data and is sent to
    the target like any other: it never reaches disk unredacted, in a manifest
    either. Keys are kept (they are the body's shape). Call on a checked body
    (at most :data:`~streambench.limits.BODY_DEPTH` deep).
    """
    if isinstance(body, dict):
        return {key: public_body(value) for key, value in body.items()}
    if isinstance(body, list | tuple):
        return [public_body(value) for value in body]
    if isinstance(body, str):
        pieces, last = [], 0
        for match in _PLACEHOLDER.finditer(body):
            pieces += [_literal(body[last:match.start()]), match.group()]
            last = match.end()
        return "".join([*pieces, _literal(body[last:])])
    if isinstance(body, bool) or body is None:
        return body
    return "<number>"


def _literal(text: str) -> str:
    return f"<text:{len(text)}>" if text else ""


def nesting(value: Any) -> int:
    """How deeply ``value`` nests lists and mappings (iterative: safe on any input)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, depth + 1)
            if deepest > BODY_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent (not valid UTF-8: a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"holds \\u{ord(text[exc.start]):04x} at character {exc.start}, a lone UTF-16 "
                "surrogate that is not valid UTF-8 text; remove it")
    return None


class BodyPool:
    """``size`` pre-rendered bodies; :meth:`frame` makes message ``i`` from body ``i % size``.

    Build with :func:`compile_body`. Immutable once built; safe to share between
    connections and threads.
    """

    __slots__ = ("_cid_key", "_prefixes", "_seq_key", "size")

    def __init__(self, prefixes: list[bytes], *, cid_field: str, seq_field: str) -> None:
        self._prefixes = tuple(prefixes)
        self.size = len(prefixes)
        # The field names are JSON-encoded once here; frame() only concatenates.
        self._cid_key = orjson.dumps(cid_field) + b':"'
        self._seq_key = b'",' + orjson.dumps(seq_field) + b":"

    def frame(self, i: int, cid: str, seq: int) -> bytes:
        """The full JSON message number ``i``: body ``i % size`` + ``"cid":"<cid>","seq":<seq>}``.

        The correlation id is always the last-but-one field and the sequence
        number the last. ``cid`` is written as is, without JSON escaping (this is
        the hot path): it must be plain ASCII without quotes or backslashes, as
        the ``"<conn>-<seq>"`` ids streambench makes are.
        """
        return b"%s%s%s%s%d}" % (
            self._prefixes[i % self.size], self._cid_key, cid.encode(), self._seq_key, seq
        )

    def body(self, i: int) -> dict[str, Any]:
        """Body ``i % size`` as a dict, without the correlation fields (for tests and previews)."""
        prefix = self._prefixes[i % self.size]
        text = prefix[:-1] if prefix.endswith(b",") else prefix
        doc: dict[str, Any] = orjson.loads(text + b"}")
        return doc

    def __len__(self) -> int:
        return self.size


def compile_body(
    body: dict[str, Any], *, seed: int, pool: int, cid_field: str = "cid", seq_field: str = "seq"
) -> BodyPool:
    """Render ``pool`` bodies from ``body`` deterministically for ``seed``.

    Raises :class:`~streambench.errors.ConfigError` for an invalid body (the
    scenario loader reports the same problems earlier, with line numbers).
    """
    if pool < 1:
        raise ConfigError(f"message.pool: expected a whole number >= 1, got {pool}")
    try:
        check_body(body, cid_field=cid_field, seq_field=seq_field)
    except BodyProblem as exc:
        raise ConfigError(f"message.{exc}") from exc
    too_many = pool_problem(body, pool)
    if too_many is not None:
        raise ConfigError(f"message.pool: {too_many}")
    template = _compile(body)
    rng = random.Random(f"streambench-body:{seed}")
    prefixes = []
    for _ in range(pool):
        rendered = orjson.dumps(template(rng))
        prefixes.append(rendered[:-1] + (b"," if len(rendered) > 2 else b""))
    return BodyPool(prefixes, cid_field=cid_field, seq_field=seq_field)


def render_pool(body: Any, *, seed: int, pool: int, slots: frozenset[str]) -> list[Any]:
    """``pool`` renderings of ``body`` (an object or a text) for ``seed``.

    Placeholders named in ``slots`` (``cid``, ``seq``, ``conn``, variables) are
    not filled: each becomes a marker, ``MARK_OPEN + name + MARK_CLOSE``, that
    :mod:`streambench.generate.engine.frames` turns into a slot of the frame.
    A body with nothing drawn at random (every placeholder a slot) has one
    rendering: the pool would be ``pool`` copies of it, made at every run's start.
    """
    template = _compile(body, slots)
    rng = random.Random(f"streambench-body:{seed}")
    if all(name in slots for _, name in placeholder_names(body)):
        return [template(rng)]
    return [template(rng) for _ in range(pool)]


def render(body: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """One body rendered for ``seed`` (a preview; no validation beyond the placeholders)."""
    check_body(body, cid_field="\0cid", seq_field="\0seq")
    rendered: dict[str, Any] = _compile(body)(random.Random(f"streambench-body:{seed}"))
    return rendered


# --- the placeholders --------------------------------------------------------------

def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words("Ada Alan Grace Linus Margaret Ken Barbara Dennis Frances Edsger Radia Guido "
          "Hedy Tim Katherine John Sophie Donald Joan Niklaus Lucia Yukihiro Anita Bjarne")
_LAST = _words("Lovelace Turing Hopper Torvalds Hamilton Thompson Liskov Ritchie Allen Dijkstra "
         "Perlman Rossum Lamarr Berners-Lee Johnson Backus Wilson Knuth Clarke Wirth Sato "
         "Matsumoto Borg Stroustrup")
_WORDS = _words("stream socket packet latency broker topic server client message queue reply "
          "signal window buffer frame channel route cache batch shard token session event "
          "river harbor lantern meadow copper silver quiet rapid gentle bright early late "
          "sends waits reads writes opens closes keeps drops holds finds makes takes")
_CITIES = _words("Lisbon Osaka Nairobi Lima Oslo Montreal Auckland Porto Kyoto Accra Bogota "
                  "Tallinn Hanoi Dublin Cusco Tbilisi Perth Quito Seville Busan Dakar Bergen")
_TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737: never routed
_YEAR_START = 1_704_067_200  # 2024-01-01T00:00:00Z: synthetic timestamps fall in 2024
_YEAR_SECONDS = 366 * 86_400

PLACEHOLDERS: dict[str, str] = {
    "user_id": "a user id such as user-04217 (10 000 distinct users)",
    "uuid": "a random UUID (version 4 layout)",
    "email": "an address at example.com / example.org / example.net",
    "phone": "a fictional phone number such as +1-415-555-0142",
    "name": "first and last name",
    "first_name": "a first name",
    "last_name": "a last name",
    "word": "one word",
    "sentence": "a sentence of 5 to 12 words",
    "chars:N": "exactly N characters of words (for payload size tests)",
    "hex:N": "N random hex digits (default 16)",
    "int": "a whole number in 0..1000000 (typed when the string is only this placeholder)",
    "int:LO:HI": "a whole number in LO..HI inclusive (typed)",
    "float": "a number between 0 and 1, 3 decimals (typed)",
    "float:LO:HI": "a number between LO and HI, 3 decimals (typed)",
    "bool": "true or false (typed)",
    "choice:A:B:...": "one of the listed words",
    "ip": "an IPv4 address from the documentation ranges (RFC 5737)",
    "city": "a city name",
    "timestamp": "an ISO-8601 UTC time in 2024 (not the send time)",
    "epoch_ms": "milliseconds since 1970 for a time in 2024 (typed)",
}


def _no_args(name: str, args: list[str]) -> tuple[()]:
    if args:
        raise ValueError(f"{{{{{name}}}}} takes no arguments")
    return ()


def _number_range(kind: type, default: tuple[Any, Any]) -> Any:
    def parse(name: str, args: list[str]) -> tuple[Any, Any]:
        if not args:
            return default
        if len(args) != 2:
            raise ValueError(f"expected {{{{{name}:LO:HI}}}} with two bounds")
        try:
            lo, hi = kind(args[0]), kind(args[1])
        except ValueError:
            noun = "whole numbers" if kind is int else "numbers"
            raise ValueError(f"LO and HI must be {noun}, got {args[0]!r} and {args[1]!r}") from None
        if lo > hi:
            raise ValueError(f"LO must be <= HI, got {lo} > {hi}")
        return lo, hi
    return parse


def _count(default: int | None) -> Any:
    def parse(name: str, args: list[str]) -> tuple[int]:
        if not args and default is not None:
            return (default,)
        if len(args) != 1 or not args[0].isascii() or not args[0].isdigit():
            raise ValueError(f"expected {{{{{name}:N}}}} with N a whole number >= 0")
        if len(args[0]) > 9 or int(args[0]) > PLACEHOLDER_CHARS:
            raise ValueError(f"N must be at most {PLACEHOLDER_CHARS}, got {args[0]}")
        return (int(args[0]),)
    return parse


def _choices(name: str, args: list[str]) -> tuple[tuple[str, ...]]:
    if not args or not all(args):
        raise ValueError("expected {{choice:A:B:...}} with at least one non-empty option")
    return (tuple(args),)


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(5, 12))
    return " ".join(words).capitalize() + "."


def _chars(n: int) -> Render:
    def make(rng: random.Random) -> str:
        words, size = [], 0
        while size < n:  # linear: joined once at the end
            word = rng.choice(_WORDS) + " "
            words.append(word)
            size += len(word)
        return "".join(words)[:n]
    return make


def _when(rng: random.Random) -> int:
    return (_YEAR_START + rng.randrange(_YEAR_SECONDS)) * 1000 + rng.randrange(1000)


def _iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_PARSERS: dict[str, Any] = {
    "int": _number_range(int, (0, 1_000_000)),
    "float": _number_range(float, (0.0, 1.0)),
    "chars": _count(None),
    "hex": _count(16),
    "choice": _choices,
}

# name -> factory(*parsed args) -> (rng -> value)
GENERATORS: dict[str, Any] = {
    "user_id": lambda: lambda rng: f"user-{rng.randrange(10_000):05d}",
    "uuid": lambda: lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "email": lambda: lambda rng: (
        f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}{rng.randrange(100)}"
        f"@example.{rng.choice(('com', 'org', 'net'))}"
    ),
    "phone": lambda: lambda rng: f"+1-{rng.randint(201, 989)}-555-01{rng.randrange(100):02d}",
    "name": lambda: lambda rng: f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
    "first_name": lambda: lambda rng: rng.choice(_FIRST),
    "last_name": lambda: lambda rng: rng.choice(_LAST),
    "word": lambda: lambda rng: rng.choice(_WORDS),
    "sentence": lambda: _sentence,
    "chars": _chars,
    "hex": lambda n: lambda rng: f"{rng.getrandbits(4 * n):0{n}x}" if n else "",
    "int": lambda lo, hi: lambda rng: rng.randint(lo, hi),
    "float": lambda lo, hi: lambda rng: round(rng.uniform(lo, hi), 3),
    "bool": lambda: lambda rng: rng.random() < 0.5,
    "choice": lambda options: lambda rng: rng.choice(options),
    "ip": lambda: lambda rng: f"{rng.choice(_TEST_NETS)}.{rng.randint(1, 254)}",
    "city": lambda: lambda rng: rng.choice(_CITIES),
    "timestamp": lambda: lambda rng: _iso(_when(rng)),
    "epoch_ms": lambda: _when,
}


def parse_args(name: str, args: list[str]) -> tuple[Any, ...]:
    """The converted arguments of ``{{name:ARGS}}``; ValueError says what was expected."""
    parser = _PARSERS.get(name)
    return _no_args(name, args) if parser is None else parser(name, args)


# --- compiling a template into a function of the random generator -----------------

Render = Any  # Callable[[random.Random], Any]; kept loose to stay readable


def _compile(value: Any, slots: frozenset[str] = frozenset()) -> Render:
    if isinstance(value, dict):
        parts = [(key, _compile(item, slots)) for key, item in value.items()]
        return lambda rng: {key: part(rng) for key, part in parts}
    if isinstance(value, list | tuple):
        items = [_compile(item, slots) for item in value]
        return lambda rng: [item(rng) for item in items]
    if isinstance(value, str) and "{{" in value:
        return _compile_string(value, slots)
    return lambda rng: value


def _compile_string(text: str, slots: frozenset[str] = frozenset()) -> Render:
    found = list(_PLACEHOLDER.finditer(text))
    if len(found) == 1 and found[0].span() == (0, len(text)):  # exactly one: a typed value
        return _generator(found[0].group(1), slots)
    pieces: list[Render] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[last : match.start()]
        pieces.append(lambda rng, literal=literal: literal)
        generate = _generator(match.group(1), slots)
        pieces.append(lambda rng, generate=generate: _as_text(generate(rng)))
        last = match.end()
    tail = text[last:]
    pieces.append(lambda rng: tail)
    return lambda rng: "".join(piece(rng) for piece in pieces)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _generator(inner: str, slots: frozenset[str] = frozenset()) -> Render:
    name, args = _split(inner)
    if name in slots:
        marker = f"{MARK_OPEN}{name}{MARK_CLOSE}"
        return lambda rng: marker
    make = GENERATORS[name]
    return make(*parse_args(name, args))


def _split(inner: str) -> tuple[str, list[str]]:
    name, *args = inner.strip().split(":")
    return name.strip(), [arg.strip() for arg in args]


def _placeholder_problem(inner: str, names: frozenset[str] | set[str] = frozenset(BUILTIN)
                         ) -> str | None:
    name, args = _split(inner)
    if name in names and name not in GENERATORS:
        return f"{{{{{name}}}}} takes no arguments" if args else None
    if name not in GENERATORS:
        if names is ANY_NAME and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and not args:
            return None
        close = difflib.get_close_matches(name, [*GENERATORS, *names], n=1, cutoff=0.6)
        hint = f"; did you mean {{{{{close[0]}}}}}?" if close else " (see docs/scenarios.md)"
        return f"unknown placeholder {{{{{inner.strip()}}}}}{hint}"
    try:
        parse_args(name, args)
    except ValueError as exc:
        return f"placeholder {{{{{inner.strip()}}}}}: {exc}"
    return None


def _leaves(value: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> Iterator[tuple[Loc, Any]]:
    """Every scalar in the body with its position; non-text keys go to ``problems``."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = key if isinstance(key, str) else _key_text(key)
            if not isinstance(key, str):
                problems.append(((*loc, name), _key_problem(key)))
            elif (bad := text_problem(key)) is not None:
                problems.append((loc, f"a key {bad}"))
            yield from _leaves(item, (*loc, name), problems)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, (*loc, index), problems)
    else:
        yield loc, value


def _key_text(key: Any) -> str:
    return ("true" if key else "false") if isinstance(key, bool) else str(key)


def _key_problem(key: Any) -> str:
    if isinstance(key, bool):
        return "key must be text: YAML reads on/off/yes/no as true/false; quote it"
    return f"key {key!r} must be text: quote it in YAML"


def _json_problem(value: Any) -> str | None:
    """Why a scalar cannot be sent as JSON, or None."""
    if value is None or isinstance(value, bool | dt.date):
        return None
    if isinstance(value, int):
        return None if -(1 << 63) <= value < (1 << 64) else f"{value} is too large for JSON"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    return f"a value of type {type(value).__name__} cannot be sent as JSON"


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
