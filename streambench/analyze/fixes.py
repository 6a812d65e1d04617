"""Fix suggestions: the seed catalogue (``rules/fixes.yaml``) and how sure we are.

A fix file::

    fixes:
      - id: raise-server-workers
        title: Give the server more workers
        applies_to:                 # any selector that matches makes the fix apply
          kinds: [stall]            # anomaly (rule) kinds
          rules: [latency-p50-shift]
          patterns: ["timeout"]     # regexes over the fingerprint and error text
        prior: 0.5                  # how often this fix is right, before evidence
        steps: ["...", "..."]

The confidence of a suggestion is ``prior x strength x feedback`` capped at 1:
``strength`` (0.5..1) is how far past its limit the anomaly's evidence was;
``feedback`` is ``2 (w + 1) / (w + f + 2)`` from the knowledge base, where
``w`` counts "worked" feedback and resolutions with this fix for the anomaly's
fingerprint and ``f`` counts "did not work": 1 with no history, towards 2 when
the fix keeps working, towards 0 when it keeps failing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streambench.analyze.rules import default_rules_path, read_yaml
from streambench.analyze.types import Anomaly, Suggestion
from streambench.errors import ConfigError


class AppliesTo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


class Fix(BaseModel):
    """One entry of the fix catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: str
    applies_to: AppliesTo
    prior: float = Field(default=0.5, gt=0, le=1)
    steps: tuple[str, ...] = ()

    def match(self, anomaly: Anomaly) -> str | None:
        """Why this fix applies to ``anomaly`` (a short phrase), or None."""
        if anomaly.kind in self.applies_to.kinds:
            return f"rule kind {anomaly.kind}"
        if anomaly.rule in self.applies_to.rules:
            return f"rule {anomaly.rule}"
        text = f"{anomaly.fingerprint} {anomaly.evidence.get('error', '')}"
        for pattern in self.applies_to.patterns:
            if re.search(pattern, text):
                return f"pattern /{pattern}/"
        return None


def load_fixes(path: str | Path | None = None) -> tuple[Fix, ...]:
    """Read and validate a fix catalogue; ``None``: the default ``rules/fixes.yaml``."""
    path = Path(path) if path is not None else default_rules_path("fixes.yaml")
    doc = read_yaml(path, what="fix file")
    if not isinstance(doc, dict) or not isinstance(doc.get("fixes"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'fixes' list")
    fixes = []
    for index, raw in enumerate(doc["fixes"]):
        name = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        try:
            fixes.append(Fix.model_validate(raw))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or "fix"
            raise ConfigError(f"{path}: fix {name!r} field {field!r}: {error['msg']}") from None
    return tuple(fixes)


def _evidence_phrase(anomaly: Anomaly) -> str:
    shown = [f"{k}={v}" for k, v in anomaly.evidence.items() if isinstance(v, int | float)][:3]
    return ", ".join(shown)


def suggest_fixes(
    anomaly: Anomaly,
    *,
    fixes: Sequence[Fix],
    knowledge: Any | None = None,
    limit: int = 3,
) -> tuple[Suggestion, ...]:
    """The ``limit`` most confident fixes that apply to ``anomaly``, best first."""
    suggestions = []
    for fix in fixes:
        reason = fix.match(anomaly)
        if reason is None:
            continue
        worked, failed = (0, 0)
        if knowledge is not None:
            worked, failed = knowledge.fix_record(anomaly.fingerprint, fix.id)
        feedback = 2 * (worked + 1) / (worked + failed + 2)
        confidence = min(1.0, fix.prior * anomaly.strength * feedback)
        why = (
            f"applies by {reason}; prior {fix.prior:.2f}; evidence strength "
            f"{anomaly.strength:.2f} ({_evidence_phrase(anomaly)}); "
            + (f"past feedback for this fingerprint: worked {worked}, did not work {failed} "
               f"(x{feedback:.2f})" if worked or failed else "no past feedback")
        )  # fmt: skip
        suggestions.append(Suggestion(fix.id, confidence, why, fix.title, fix.steps))
    suggestions.sort(key=lambda s: -s.confidence)
    return tuple(suggestions[:limit])
