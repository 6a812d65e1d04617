"""Bounds on what comes from outside: scenario files and what servers send.

Input past a bound is a one-line error (a scenario) or an error row / a mask
(a captured event), never a crash, a hang or a machine out of memory. The
figures are documented in docs/scenarios.md and docs/privacy.md; keep them in
step.
"""

from __future__ import annotations

import re

# -- scenario files --------------------------------------------------------------
SCENARIO_BYTES = 1 << 20  # a scenario file is a few KB; /dev/zero is not one
YAML_VALUES = 100_000  # values after expanding YAML aliases (an alias bomb expands to billions)
YAML_DEPTH = 64  # nesting of a scenario file
BODY_DEPTH = 32  # nesting of message.body: no deeper than what capture keeps (JSON_DEPTH)
PLACEHOLDER_CHARS = 1 << 20  # {{chars:N}} and {{hex:N}}: at most N characters
POOL_BODIES = 1_000_000  # message.pool
POOL_BYTES = 256 << 20  # message.pool x the size of one rendered body
MESSAGES = 10_000_000_000  # messages a run may schedule (rate x duration, over all stages)
DURATION_S = 30 * 86_400.0  # a run's (or a stage's) duration
RATE = 10_000_000.0  # messages/s of the whole run
RECONNECT_DELAY_S = 0.01  # target.reconnect.initial and .max: never a busy loop

# -- captured events -------------------------------------------------------------
JSON_DEPTH = 32  # deeper payloads are kept as <deep-json:N> (Arrow and orjson have limits)


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(text: str, *, limit: int = JSON_DEPTH) -> int:
    """Nesting depth of the JSON text ``text`` (brackets inside strings ignored);
    stops counting once past ``limit``. Iterative: safe on any input."""
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def too_deep(text: str | bytes) -> bool:
    """True if ``text`` nests deeper than :data:`JSON_DEPTH` (parse it as not JSON).

    Costs two C-level counts for any reply with few brackets; only a reply with
    more than ``JSON_DEPTH`` of them is measured exactly.
    """
    if isinstance(text, bytes):
        if text.count(b"{") + text.count(b"[") <= JSON_DEPTH:
            return False
        text = text.decode("utf-8", "replace")
    elif text.count("{") + text.count("[") <= JSON_DEPTH:
        return False
    return json_depth(text) > JSON_DEPTH
