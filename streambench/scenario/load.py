"""Reading scenario files: YAML -> :class:`Scenario`, or every problem at once.

``load_scenario`` and ``parse_scenario`` never let a YAML or pydantic error
escape: they raise :class:`~streambench.errors.ScenarioError` carrying one
:class:`~streambench.errors.Problem` per thing wrong, each with the field path
(``load.stages[1].rate``), a plain-words message of what was expected, and
the line of the file where the field is written.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Iterator, Sequence
from typing import Any

import annotated_types as at
import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic.fields import FieldInfo

from streambench import limits
from streambench.errors import ConfigError, Problem, ScenarioError
from streambench.scenario.model import FieldProblem, Scenario, parse_duration
from streambench.scenario.network import NetworkFault
from streambench.scenario.secrets import REDACTED, register_scenario
from streambench.scenario.synth import BodyProblem, text_problem
from streambench.scrub import register_url

Loc = tuple[str | int, ...]

# Top-level keys starting with this are ignored: a place for YAML anchors to
# reuse (`x-ramp: &ramp {...}` then `<<: *ramp`), as in docker-compose files.
EXTENSION_PREFIX = "x-"


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate the scenario at ``path``; raise ScenarioError listing every problem."""
    file = os.fspath(path)
    return parse_scenario(_read(file), file=file)


def _read(file: str) -> str:
    try:
        with open(file, encoding="utf-8") as handle:
            text = handle.read(limits.SCENARIO_BYTES + 1)  # bounded: /dev/zero is a file too
    except FileNotFoundError:
        raise ScenarioError(file, [Problem("", "file not found")]) from None
    except IsADirectoryError:
        raise ScenarioError(file, [Problem("", "is a directory, not a scenario file")]) from None
    except PermissionError:
        raise ScenarioError(file, [Problem("", "permission denied")]) from None
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte {exc.start} cannot be decoded)"
        raise ScenarioError(file, [Problem("", message)]) from None
    except OSError as exc:
        raise ScenarioError(file, [Problem("", f"cannot be read: {exc.strerror}")]) from None
    if len(text) > limits.SCENARIO_BYTES:
        message = f"larger than {limits.SCENARIO_BYTES >> 20} MiB; a scenario file is a few KB"
        raise ScenarioError(file, [Problem("", message)])
    return text


def parse_scenario(text: str, *, file: str = "<string>") -> Scenario:
    """Validate scenario YAML ``text``; ``file`` names it in problems."""
    node = _compose(text, file)
    if node is None:
        raise ScenarioError(file, [Problem("", "the file is empty; a scenario needs at least "
                                           "name and load (see docs/scenarios.md)")])
    if not isinstance(node, yaml.MappingNode):
        got = "a list" if isinstance(node, yaml.SequenceNode) else f"{node.value!r}"
        message = f"expected a mapping of keys (name, target, load, ...) at top level, got {got}"
        raise ScenarioError(file, [Problem("", message, node.start_mark.line + 1)])
    return _validated(node, file)


def _validated(node: yaml.MappingNode, file: str, *,
               fill: dict[str, Any] | None = None) -> Scenario:
    """The scenario in ``node`` (``fill``: keys it may leave out), or every problem."""
    # Index before constructing: construction flattens `<<:` merges in the nodes.
    # Indexing also bounds the size and depth of the file with its aliases
    # expanded, before anything else walks it.
    lines: dict[Loc, int] = {}
    problems = _index(node, lines)
    if any(p.path == "" for p in problems):
        raise ScenarioError(file, problems)
    data = {key: value for key, value in _construct(node, file).items()
            if not (isinstance(key, str) and key.startswith(EXTENSION_PREFIX))}
    data = {**(fill or {}), **data}
    # Paths in a scenario (a gRPC proto, TLS files) are relative to its file.
    base_dir = os.path.dirname(os.path.abspath(file)) if file != "<string>" else None
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems += _convert(exc, lines)
    if problems:
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ScenarioError(file, problems)
    register_scenario(scenario)  # its credentials are scrubbed from all this process writes
    return scenario


def load_network_faults(path: str | os.PathLike[str]) -> tuple[tuple[NetworkFault, ...], int]:
    """The ``network_faults`` and ``seed`` of a faults file for ``streambench proxy``.

    The file is a list of network faults, a mapping with ``network_faults:``
    (and maybe ``seed:``), or a whole scenario. Problems are reported as for
    scenarios (:class:`ScenarioError`, with field paths and lines).
    """
    file = os.fspath(path)
    node = _compose(_read(file), file)
    if isinstance(node, yaml.SequenceNode):  # a bare list: the network_faults themselves
        key = yaml.ScalarNode("tag:yaml.org,2002:str", "network_faults",
                              start_mark=node.start_mark, end_mark=node.start_mark)
        node = yaml.MappingNode("tag:yaml.org,2002:map", [(key, node)])
    if not isinstance(node, yaml.MappingNode):
        raise ScenarioError(file, [Problem("", "expected a list of network faults, or a mapping "
                                           "with network_faults:")])
    keys = {key.value for key, _ in node.value}
    if "network_faults" not in keys:
        raise ScenarioError(file, [Problem("", "no network_faults: list in this file")])
    fill = None if {"name", "load"} & keys else {  # faults only: the rest is a stand-in
        "name": "proxy", "load": {"rate": 1, "duration": 1}}
    scenario = _validated(node, file, fill=fill)
    return scenario.network_faults, scenario.seed


def with_overrides(
    scenario: Scenario,
    *,
    rate: float | None = None,
    connections: int | None = None,
    duration: float | None = None,
    target: str | None = None,
    seed: int | None = None,
    source_addresses: Sequence[str] | None = None,
) -> Scenario:
    """The scenario with the CLI's ``--rate/--connections/--duration/--target/--seed`` applied.

    On a constant load, ``rate`` and ``duration`` replace ``load.rate`` and
    ``load.duration``. On a staged load they keep its shape: ``rate`` scales
    every stage's ``rate`` and ``to`` by the same factor so the peak equals the
    given rate, and ``duration`` scales every stage's duration so the stages
    add up to it. ``target`` replaces ``target.url`` (its scheme must fit
    ``target.protocol``). ``source_addresses`` (``--source-address``, WebSocket
    targets) replaces ``target.source_addresses``. Raises ConfigError for values
    that cannot work.
    """
    data = scenario.model_dump()
    _override_load(data["load"], rate=rate, duration=duration, connections=connections)
    if target is not None:
        data["target"]["url"] = target
    if seed is not None:
        data["seed"] = seed
    if source_addresses is not None:
        if data["target"]["protocol"] != "websocket":
            raise ConfigError(f"--source-address: applies to WebSocket targets, not "
                              f"{data['target']['protocol']}")
        data["target"]["source_addresses"] = list(source_addresses)
    if target is not None:
        register_url(target)  # scrubbed from errors even if the URL is refused below
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = _convert(exc, {})
        detail = "; ".join(f"{p.path}: {p.message}" for p in problems)
        raise ConfigError(f"scenario {scenario.name} with overrides is invalid: {detail}") from None
    register_scenario(scenario)
    return scenario


def _override_load(load: dict[str, Any], *, rate: float | None, duration: float | None,
                   connections: int | None) -> None:
    """``--rate``, ``--duration`` and ``--connections`` applied to a dumped ``load``."""
    if rate is not None:
        _positive("--rate", rate)
        if load["stages"] is None:
            load["rate"] = rate
        else:
            load["stages"] = _scale_rates(load["stages"], rate)
    if duration is not None:
        _positive("--duration", duration)
        if load["stages"] is None:
            load["duration"] = duration
        else:
            factor = duration / sum(stage["duration"] for stage in load["stages"])
            load["stages"] = [{**s, "duration": s["duration"] * factor} for s in load["stages"]]
    if connections is not None:
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise ConfigError(f"--connections: expected a whole number >= 1, got {connections!r}")
        load["connections"] = connections


def _positive(option: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{option}: expected a number > 0, got {value!r}")


def _scale_rates(stages: list[dict[str, Any]], rate: float) -> list[dict[str, Any]]:
    peak = max(max(s["rate"], s["to"] or 0.0) for s in stages)
    if peak == 0:
        raise ConfigError("--rate: cannot scale load.stages to a peak rate: every stage has rate 0")
    factor = rate / peak
    return [
        {**s, "rate": s["rate"] * factor, "to": None if s["to"] is None else s["to"] * factor}
        for s in stages
    ]


# --- YAML -> nodes, data and line numbers -------------------------------------------


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ScenarioError(file, [_yaml_problem(exc)]) from None
    except RecursionError:  # PyYAML composes recursively
        raise ScenarioError(file, [Problem("", _TOO_DEEP)]) from None


def _construct(node: yaml.Node, file: str) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ScenarioError(file, [_yaml_problem(exc, what="YAML error")]) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError, *, what: str = "YAML syntax error") -> Problem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"{what}: {problem}" + (f" ({context})" if context else "")
    if mark is not None:
        message += f" at column {mark.column + 1}"
    return Problem("", message, None if mark is None else mark.line + 1)


_TOO_DEEP = f"nested more than {limits.YAML_DEPTH} levels deep"
_BODY = ("message", "body")  # its text is checked by the body's own validator


def _index(root: yaml.Node, lines: dict[Loc, int]) -> list[Problem]:
    """Record the line of every field into ``lines``; a Problem per duplicate key and
    per text that is not UTF-8. Past :data:`~streambench.limits.YAML_VALUES` values
    (aliases expanded) or :data:`~streambench.limits.YAML_DEPTH` levels, one Problem
    for the whole file (path ``""``) and nothing more is walked."""
    problems: list[Problem] = []
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    visited = 0
    while stack:
        node, loc = stack.pop()
        visited += 1
        if visited > limits.YAML_VALUES:
            return [Problem("", f"more than {limits.YAML_VALUES:,} values once YAML aliases "
                            "are expanded (an alias bomb?)", node.start_mark.line + 1)]
        if len(loc) > limits.YAML_DEPTH:
            return [Problem("", _TOO_DEEP, node.start_mark.line + 1)]
        if isinstance(node, yaml.MappingNode):
            problems += _mapping(node, loc, lines, stack)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*loc, index)] = item.start_mark.line + 1
                stack.append((item, (*loc, index)))
        elif isinstance(node.value, str) and loc[:2] != _BODY:
            bad = text_problem(node.value)
            if bad is not None:
                problems.append(Problem(_format_loc(loc), bad, node.start_mark.line + 1))
    return problems


def _mapping(node: yaml.MappingNode, loc: Loc, lines: dict[Loc, int],
             stack: list[tuple[yaml.Node, Loc]]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key in seen and key != "<<":
            problems.append(Problem(_format_loc((*loc, key)), f"key {key!r} appears twice "
                                    f"(first on line {seen[key]}); remove one", line))
        if isinstance(key, str) and loc[:2] != _BODY and (bad := text_problem(key)) is not None:
            problems.append(Problem(_format_loc(loc), f"a key {bad}", line))
        seen[key] = line
        lines[(*loc, key)] = line
        stack.append((value_node, (*loc, key)))
    return problems


def _line(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, else of its nearest written parent (a missing key)."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def _convert(exc: ValidationError, lines: dict[Loc, int]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        for loc, message in _describe(error):
            problems.append(Problem(_format_loc(loc), message, _line(loc, lines)))
    return problems


# --- pydantic errors -> plain words ------------------------------------------------

_NOUNS = {  # error type prefix -> what was expected
    "float": "a number", "int": "a whole number", "bool": "true or false",
    "string": "text", "dict": "a mapping (key: value)", "model": "a mapping (key: value)",
    "tuple": "a list", "list": "a list", "finite": "a finite number (not .inf or .nan)",
}
_PROTOCOL_ALIASES = {"ws": "websocket", "wss": "websocket", "https": "http", "mqtts": "mqtt"}
_MISSING_HINTS: dict[tuple[str, ...], str] = {
    ("load",): " (give load.rate and load.duration, or load.stages)",
    ("name",): " (a short name such as smoke, used in run ids and reports)",
}
_FIELD_NAME = "expected a JSON field name without quotes, backslashes or control characters"
_PATTERN_HINTS: dict[Loc, str] = {  # what a string field's pattern means, in words
    ("name",): "expected letters, digits, '.', '_' or '-' (no spaces)",
    ("cid_field",): _FIELD_NAME,
    ("seq_field",): _FIELD_NAME,
}
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _describe(error: Any) -> Iterator[tuple[Loc, str]]:
    """``(loc, message)`` for one pydantic error; a BodyProblem expands into several.

    ``raw`` is pydantic's location (with union tags such as ``delay`` in
    ``faults.0.delay.at``), used to find the model; the yielded loc is the
    path as written in YAML.
    """
    if "[key]" in error["loc"] or error["type"] == "invalid_key":
        # a mapping key that is not text (YAML reads `on:` as true, `1:` as a number)
        where = error["loc"].index("[key]") if "[key]" in error["loc"] else len(error["loc"])
        parent, key = _walk(error["loc"][: where - 1])[0], error.get("input")
        yield (*parent, _show(key)), _key_not_text(key)
        return
    raw, kind = tuple(error["loc"]), error["type"]
    loc, models = _walk(raw)
    ctx = error.get("ctx", {})
    cause = ctx.get("error")
    if isinstance(cause, BodyProblem):
        for where, message in cause.problems:
            yield (*loc, "body", *where), message
    elif isinstance(cause, FieldProblem):
        yield (*loc, *cause.loc), str(cause)
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        key = ctx["discriminator"].strip("'")
        tags = ctx.get("expected_tags") or ", ".join(repr(t) for m in models for t in _tags(m))
        if kind == "union_tag_not_found":
            yield (*loc, key), f"required key {key!r} is missing (one of {tags})"
        else:
            hint = _suggest(ctx["tag"], tags)
            yield (*loc, key), f"unknown {key} {ctx['tag']!r}; expected one of {tags}{hint}"
    elif kind == "extra_forbidden":
        yield loc, _unknown_key(raw)
    elif kind == "missing":
        hint = _MISSING_HINTS.get(tuple(str(part) for part in loc), "")
        yield loc, f"required key {loc[-1]!r} is missing{hint}"
    elif cause is not None:
        yield loc, str(cause)
    else:
        yield loc, _expected(error, raw, loc, kind)


def _expected(error: Any, raw: Loc, loc: Loc, kind: str) -> str:
    # Never echo what was written in a credential field: error output lands in CI logs.
    secret = loc[:2] in (("target", "password"), ("target", "headers"), ("target", "metadata"))
    got = REDACTED if secret else _show(error.get("input"))
    info = _field(raw)
    if kind == "literal_error":
        options = str(error["ctx"]["expected"])
        return f"expected {options}, got {got}{_suggest(error.get('input'), options)}"
    if kind == "string_pattern_mismatch" and loc[-1:] in _PATTERN_HINTS:
        return f"{_PATTERN_HINTS[loc[-1:]]}, got {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("too_short", "too_long"):
        message = str(error["msg"]).replace("Tuple should", "expected a list with").lower()
        return f"{message}, got {got}"
    noun = next((n for prefix, n in _NOUNS.items() if kind.startswith(prefix)), None)
    if noun is None and kind not in _BOUNDS:
        return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {got}"
    if noun is None:
        noun = _noun_of(info)
    return f"expected {noun}{_bounds(info)}, got {got}"


def _key_not_text(key: Any) -> str:
    if isinstance(key, bool):
        return "key must be text: YAML reads on/off/yes/no as true/false; quote it"
    return f"key {_show(key)} must be text: quote it in YAML"


def _unknown_key(raw: Loc) -> str:
    key, parents = str(raw[-1]), _walk(raw[:-1])[1]
    owners = [tag for model in _other_members(raw[:-1]) if key in _names(model)
              for tag in _tags(model)[:1]]
    if owners:  # a key of another member of a union: `qos` on a websocket target
        return f"unknown key {key!r}: it applies to {' and '.join(owners)}, not {raw[-2]}"
    names = [name for model in parents for name in _names(model) if name not in ("kind",)]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    for name in names:  # a key written one level too high: `rate:` beside `load:`
        if any(key in _names(child) for child in _walk((*raw[:-1], name))[1]):
            return f"unknown key {key!r} here; it belongs under {name!r} ({name}.{key})"
    return f"unknown key {key!r}; expected one of: {', '.join(names)}" if names else \
        f"unknown key {key!r}"


def _other_members(raw: Loc) -> list[type[BaseModel]]:
    """The members of the union at ``raw[:-1]`` other than the one ``raw[-1]`` names."""
    if not raw or isinstance(raw[-1], int):
        return []
    members = _walk(raw[:-1])[1]
    if len(members) < 2:
        return []
    return [m for m in members if raw[-1] not in (*_tags(m), m.__name__)]


def _suggest(value: Any, options: str) -> str:
    if value in _PROTOCOL_ALIASES and "websocket" in options:
        return f"; did you mean {_PROTOCOL_ALIASES[value]!r}?"
    choices = [part.strip(" '") for part in options.replace(" or ", ", ").split(",")]
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close and isinstance(value, str) else ""


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _walk(raw: Loc) -> tuple[Loc, list[type[BaseModel]]]:
    """``raw`` without union tags, and the models that may sit at its end.

    Several models sit at a position holding a union (a ``faults`` entry);
    pydantic's next location part then names the member (its tag).
    """
    models: list[type[BaseModel]] = [Scenario]
    clean: list[str | int] = []
    for part in raw:
        if isinstance(part, int):
            clean.append(part)
            continue
        # pydantic names the member by its tag (discriminated) or class name (plain union)
        member = next((m for m in models if part in (*_tags(m), m.__name__)), None) \
            if len(models) > 1 else None
        if member is not None:
            models = [member]
            continue
        info = _field_named(models, part)
        models = [] if info is None else _models_in(info.annotation)
        clean.append(part)
    return tuple(clean), models


def _field(raw: Loc) -> FieldInfo | None:
    return _field_named(_walk(raw[:-1])[1], raw[-1]) if raw else None


def _field_named(models: list[type[BaseModel]], key: str | int) -> FieldInfo | None:
    for model in models:
        for name, info in model.model_fields.items():
            if key in (name, info.alias):
                return info
    return None


def _names(model: type[BaseModel]) -> list[str]:
    """Keys as written in YAML (a field's alias when it has one: ``for``)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _tags(model: type[BaseModel]) -> tuple[Any, ...]:
    """The values of the model's Literal fields: its tag when it is a member of a union."""
    return tuple(tag for info in model.model_fields.values()
                 if typing.get_origin(info.annotation) is typing.Literal
                 for tag in typing.get_args(info.annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _metadata(info: FieldInfo | None) -> list[Any]:
    """Constraints and validators on a field, including those inside Annotated aliases."""
    if info is None:
        return []
    found = list(info.metadata)
    stack = [info.annotation]
    while stack:
        annotation = stack.pop()
        found += [m for extra in getattr(annotation, "__metadata__", ()) for m in
                  (extra.metadata if isinstance(extra, FieldInfo) else [extra])]
        stack += typing.get_args(annotation)
    return found


def _noun_of(info: FieldInfo | None) -> str:
    metadata = _metadata(info)
    if any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in metadata):
        return "a duration"
    text = repr(None if info is None else info.annotation)
    return "a whole number" if "int" in text and "float" not in text else "a number"


def _bounds(info: FieldInfo | None) -> str:
    found: dict[str, float] = {}
    for item in _metadata(info):
        for kind, attr in (("Gt", "gt"), ("Ge", "ge"), ("Lt", "lt"), ("Le", "le")):
            if isinstance(item, getattr(at, kind)):
                found[attr] = getattr(item, attr)
    low = next(((op, found[a]) for a, op in (("gt", ">"), ("ge", ">=")) if a in found), None)
    high = next(((op, found[a]) for a, op in (("lt", "<"), ("le", "<=")) if a in found), None)
    if low and high and (low[0], high[0]) == (">=", "<="):
        return f" between {_num(low[1])} and {_num(high[1])}"
    parts = [f"{bound[0]} {_num(bound[1])}" for bound in (low, high) if bound]
    return (" " + " and ".join(parts)) if parts else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _format_loc(loc: Loc) -> str:
    out = ""
    for raw in loc:
        # a lone surrogate in a key must not break printing
        part = raw.encode("utf-8", "backslashreplace").decode() if isinstance(raw, str) else raw
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
