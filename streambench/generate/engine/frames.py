"""Frames with slots: message bytes pre-rendered once, ids and variables filled per send.

Sans-I/O. A :class:`FrameTemplate` holds ``pool`` renderings of a body (a JSON
object or a raw text) as ``bytes % args`` format strings; the slots are the
placeholders filled late: ``{{cid}}``, ``{{seq}}``, ``{{conn}}`` and the
scenario's per-connection variables. A slot that is a whole JSON string
(``"id": "{{cid}}"``) is *typed*: it takes the value's JSON (a number stays a
number); inside a longer string it takes the value's text, JSON-escaped.
In a raw text body every slot takes the text as is.

:class:`Framer` is one connection's view: its variable values (set again by
every connect's captured values) and the message kinds it draws from.
"""

from __future__ import annotations

import bisect
import copy
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streambench.scenario.synth import MARK_CLOSE, MARK_OPEN, render_pool

Slot = tuple[str, bool]  # (placeholder name, typed)
_OPEN, _CLOSE = MARK_OPEN.encode(), MARK_CLOSE.encode()
_JSON_SLOT = re.compile(b'"' + _OPEN + rb"(\w+)" + _CLOSE + b'"|' + _OPEN + rb"(\w+)" + _CLOSE)
_TEXT_SLOT = re.compile(_OPEN + rb"(\w+)" + _CLOSE)
_PLAIN = (("cid", True), ("seq", True))
INTEGER_ID_STRIDE = 1_000_000_000  # integer ids: conn * stride + seq, unique in a run


def with_field(body: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` set at the dotted ``path`` (objects made on the way)."""
    out = copy.deepcopy(body)
    node = out
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


class FrameTemplate:
    """``pool`` pre-rendered frames of one body; :meth:`fill` makes frame ``i``."""

    __slots__ = ("fast", "formats", "slots", "text")

    def __init__(self, body: Any, *, seed: int, pool: int, slots: frozenset[str],
                 string_id: bool = True, prefix: str = "") -> None:
        """``prefix``: raw text before a JSON body (a Socket.IO packet's ``42{{cid}}``)."""
        self.text = isinstance(body, str)
        rendered = render_pool(body, seed=seed, pool=pool, slots=slots)
        head = render_pool(prefix, seed=seed, pool=1, slots=slots)[0].encode() if prefix \
            else b""
        formats, found = [], None
        for item in rendered:
            data = head + (item.encode() if self.text else orjson.dumps(item))
            fmt, item_slots = self._split(data)
            if found is None:
                found = item_slots
            formats.append(fmt)
        self.formats = tuple(formats)
        self.slots: tuple[Slot, ...] = found or ()
        # An id and a number only (the plain echo): formats that take (id bytes, seq)
        # directly, quotes included, so Framer's hot path is one % operation.
        self.fast: tuple[bytes, ...] | None = None
        if self.slots == _PLAIN:
            quoted = b'"%s"' if string_id else b"%s"
            self.fast = tuple(_fast_format(f, quoted) for f in self.formats)

    def _split(self, data: bytes) -> tuple[bytes, tuple[Slot, ...]]:
        pattern = _TEXT_SLOT if self.text else _JSON_SLOT
        pieces, slots, last = [], [], 0
        for match in pattern.finditer(data):
            pieces.append(data[last:match.start()].replace(b"%", b"%%"))
            typed = not self.text and match.group(1) is not None
            name = match.group(1) if typed else match.group(match.lastindex or 1)
            slots.append((name.decode(), typed))
            pieces.append(b"%s")
            last = match.end()
        pieces.append(data[last:].replace(b"%", b"%%"))
        return b"".join(pieces), tuple(slots)

    def fill(self, i: int, values: Mapping[Slot, bytes]) -> bytes:
        """Frame ``i``; ``values`` maps every slot to its bytes."""
        fmt = self.formats[i % len(self.formats)]
        return fmt % tuple(values[slot] for slot in self.slots) if self.slots else fmt


def _fast_format(fmt: bytes, quoted: bytes) -> bytes:
    """``...%s...%s...`` (id, seq) -> ``..."%s"...%d...``."""
    head, rest = fmt.split(b"%s", 1)
    middle, tail = rest.split(b"%s", 1)
    return head + quoted + middle + b"%d" + tail


def encode(value: Any, *, typed: bool, text: bool) -> bytes:
    """A slot's bytes: JSON when typed, escaped text inside a JSON string, raw in text."""
    if text:
        return _as_text(value).encode()
    if typed:
        return orjson.dumps(value)
    return orjson.dumps(_as_text(value))[1:-1]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Kind:
    """One kind of message: its template and how it is answered."""

    name: str
    weight: float
    template: FrameTemplate
    integer_id: bool = False  # the id is a number (JSON-RPC), else "<conn>-<seq>"
    expect: str = "reply"  # reply | none | stream


class Framer:
    """One connection's messages: kinds drawn by weight (seeded), slots filled.

    ``variables`` are the connection's values (``conn`` included); call
    :meth:`set` with captured values after each connect's set-up steps.

    There is one per connection (100,000 per machine), so what only some
    scenarios need is made on first use: the seeded draw of kinds (a
    ``random.Random`` is 2.5 KB) when there are several, the values when a
    template has slots beyond the id and number.
    """

    __slots__ = ("_cumulative", "_rng", "_seed", "_values", "_variables", "conn", "kinds")

    def __init__(self, kinds: Sequence[Kind], *, conn: int, seed: int,
                 variables: Mapping[str, Any]) -> None:
        self.kinds = tuple(kinds)  # the plan's own tuple: shared
        self.conn = conn
        self._seed = seed
        self._variables = variables
        self._values: dict[str, Any] | None = None
        self._cumulative: list[float] | None = None
        self._rng: random.Random | None = None

    @property
    def values(self) -> dict[str, Any]:
        """The connection's values: its variables, ``conn``, and what :meth:`set` added."""
        if self._values is None:
            self._values = {"conn": self.conn, **self._variables}
        return self._values

    def set(self, values: Mapping[str, Any]) -> None:
        self.values.update(values)

    def cid(self, kind: Kind, seq: int) -> str:
        if kind.integer_id:
            return str(self.conn * INTEGER_ID_STRIDE + seq)
        return f"{self.conn}-{seq}"

    def pick(self) -> Kind:
        if len(self.kinds) == 1:
            return self.kinds[0]
        if self._rng is None or self._cumulative is None:
            total, cumulative = 0.0, []
            for kind in self.kinds:
                total += kind.weight
                cumulative.append(total)
            self._cumulative = [c / total for c in cumulative]
            self._rng = random.Random(f"streambench-kinds:{self._seed}:{self.conn}")
        return self.kinds[bisect.bisect_left(self._cumulative, self._rng.random())]

    def message(self, seq: int) -> tuple[Kind, str, bytes]:
        """The next message: its kind, its correlation id, its bytes."""
        kinds = self.kinds
        kind = kinds[0] if len(kinds) == 1 else self.pick()
        cid = str(self.conn * INTEGER_ID_STRIDE + seq) if kind.integer_id \
            else f"{self.conn}-{seq}"
        fast = kind.template.fast
        if fast is not None:  # the hot path: an id and a number, nothing else
            return kind, cid, fast[seq % len(fast)] % (cid.encode(), seq)
        return kind, cid, self.fill(kind.template, seq, cid=cid, seq=seq,
                                     integer_id=kind.integer_id)

    def fill(self, template: FrameTemplate, i: int, *, cid: str | None = None,
             seq: int | None = None, integer_id: bool = False) -> bytes:
        """Frame ``i`` of ``template`` with this connection's values."""
        values = self.values
        if cid is not None:
            values = {**values, "cid": int(cid) if integer_id else cid, "seq": seq}
        out = {}
        for slot in template.slots:
            name, typed = slot
            if name not in values:
                raise KeyError(f"{{{{{name}}}}} has no value on connection {self.conn}")
            out[slot] = encode(values[name], typed=typed, text=template.text)
        return template.fill(i, out)
