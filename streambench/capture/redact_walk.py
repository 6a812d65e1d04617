"""The redaction policy as a tree of field names, and its reference walk in Python.

:func:`parse_policy` turns ``allow``/``hash`` paths into a :class:`Node` tree;
:func:`walk` applies it to one decoded JSON document, leaving every string to
mask or hash as a :class:`Slots` entry so that the scanners and the hasher run
column-wise over a whole batch; :func:`fill` then puts the results back. This
walk is the definition of what redaction does: the vectorised fast path
(:mod:`streambench.capture.redact_fast`) must give the same rows, and a
property test holds it to that.

Depth is bounded: :func:`streambench.limits.json_depth` measures a document's nesting without
recursion, and the redactor masks documents nested deeper than
:data:`MAX_DEPTH` before either path sees them, so nothing here can exhaust
the stack (Python's, Arrow's or orjson's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streambench.errors import ConfigError
from streambench.limits import JSON_DEPTH
from streambench.scenario.model import Redaction

# Deeper JSON is masked whole (``<deep-json:N>``). Arrow refuses struct types
# nested ~62 levels, orjson will not write more than 254: 32 keeps clear of both.
MAX_DEPTH = JSON_DEPTH
@dataclass
class Node:
    """One field name of the policy: ``action`` is mask (allow; also the correlation
    fields), hash, or None (only some of its children are kept)."""

    action: str | None = None
    children: dict[str, Node] = field(default_factory=dict)


def parse_policy(policy: Redaction, *, cid_field: str | None, seq_field: str | None,
                 keep: Sequence[str] = ()) -> Node:
    """The policy's paths as a tree; hash wins over allow.

    The correlation id and sequence fields are kept, and scanned like allowed
    fields: a server chooses what its replies carry there. ``keep``: more such
    paths (where a conversation carries its ids: ``data.request_id``); a dotted
    ``cid_field`` is a path too.
    """
    root = Node()
    for path in (cid_field, seq_field, *keep):
        if path is None:
            continue
        node = root
        for name in path.split("."):
            node = node.children.setdefault(name, Node())
        node.action = "mask"
    for action, paths in (("mask", policy.allow), ("hash", policy.hash)):
        for path in paths:
            node = root
            for name in split_path(path):
                node = node.children.setdefault(name, Node())
            node.action = action
    return root


def split_path(path: str) -> list[str]:
    """``"items[].sku"`` -> ``["items", "sku"]``; ConfigError naming a bad path."""
    names: list[str] = []
    for segment in path.split("."):
        name = segment.removesuffix("[]")
        if segment == "[]":
            continue
        if not name or "[" in name or "]" in name:
            names = []
            break
        names.append(name)
    if not names:
        raise ConfigError(f"capture.redaction: bad field path {path!r} "
                          "(expected names joined by '.', a list as 'name[]')")
    return names


DROP = object()


class Slot:
    """A string waiting for its masked or hashed value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: str | None = None


class Slots:
    """Strings collected over a batch of documents, processed column-wise."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.hash_values: list[str] = []
        self.hash_periods: list[str] = []
        self._texts: list[Slot] = []
        self._hashes: list[Slot] = []

    def text(self, value: str) -> Slot:
        self.texts.append(value)
        self._texts.append(slot := Slot())
        return slot

    def hash(self, value: Any, period: str) -> Slot | None:
        if value is None:
            return None
        if not isinstance(value, str):
            value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        self.hash_values.append(value)
        self.hash_periods.append(period)
        self._hashes.append(slot := Slot())
        return slot

    def set_texts(self, values: list[str | None]) -> None:
        for slot, value in zip(self._texts, values, strict=True):
            slot.value = value

    def set_hashes(self, values: list[str | None]) -> None:
        for slot, value in zip(self._hashes, values, strict=True):
            slot.value = value


def walk(value: Any, node: Node | None, *, period: str, slots: Slots, mode: str | None = None
         ) -> Any:
    """Apply the policy to one decoded document; strings become slots to fill.

    Recursive: call only on documents no deeper than :data:`MAX_DEPTH`.
    """
    action = node.action if node is not None and node.action else mode
    if isinstance(value, list):
        items = [walk(v, node, period=period, slots=slots, mode=mode) for v in value]
        kept = [v for v in items if v is not DROP]
        return DROP if items and not kept else kept  # scalars where objects were expected
    if action == "hash":
        return slots.hash(value, period)
    if isinstance(value, dict):
        inherit = "mask" if action == "mask" else None
        out = {}
        for key, item in value.items():
            child = node.children.get(key) if node is not None else None
            if child is None and inherit is None:
                continue
            result = walk(item, child, period=period, slots=slots, mode=inherit)
            if result is not DROP and result is not None:
                # a key inside an allowed object is data the server chose: scanned too
                out[slots.text(key) if child is None else key] = result
        return out
    if action == "mask":
        return slots.text(value) if isinstance(value, str) else value
    return DROP


def fill(value: Any) -> Any:
    """Replace slots by their values; members whose value ended up null are dropped."""
    if isinstance(value, Slot):
        return value.value
    if isinstance(value, list):
        return [fill(v) for v in value]
    if isinstance(value, dict):
        out = {fill(k): fill(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    return value
