"""Free-text PII scanners: find personal data in strings and replace it with a mask.

Each scanner replaces what it finds with a mask naming the kind (``<email>``,
``<phone>``, ``<card>``, ``<ipv4>``, ``<ipv6>``, ``<jwt>``, ``<bearer>``,
``<api_key>``, ``<iban>``, ``<ssn>``), so analysis still sees that something
was there. They run in a fixed order (tokens before e-mail, checksummed kinds
before phone numbers) because a match of one kind can contain text that looks
like another.

Speed: :meth:`Scanner.mask` works on a whole column. Kinds a regular
expression decides alone run as one vectorised ``str.replace_all`` each (Rust
regex, no Python per row). Kinds that need a check a regex cannot do (Luhn for
cards, mod-97 for IBANs, entropy for API keys, a real parse for IPv6, a digit
for bearer tokens) first find candidate rows with a vectorised ``contains``;
only those rows go through Python ``re.sub`` with the check. Patterns use the
syntax common to Rust ``regex`` and Python ``re`` (no look-around).

Masking is idempotent: masks contain nothing a scanner matches, and rows a
pass changed are scanned again until nothing changes (a mask can end a token
and so open a new word boundary).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

KINDS = ("jwt", "bearer", "email", "iban", "card", "ssn", "ipv6", "ipv4", "phone", "api_key")
_MASK_COUNT = re.compile("<(" + "|".join(KINDS) + ")>")
_MAX_ROUNDS = 4

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_HEX = "[0-9A-Fa-f]"
_PATTERNS = {
    "jwt": r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    "bearer": r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/=-]{8,}",
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "iban": r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    "card": r"\b[2-6][0-9](?:[ -]?[0-9]){11,17}\b",
    "ssn": r"\b(?:00[1-9]|0[1-9][0-9]|[1-578][0-9]{2}|6[0-57-9][0-9]|66[0-57-9])"
    r"-(?:0[1-9]|[1-9][0-9])-(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})\b",
    "ipv6": rf"(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}|[0-9A-Fa-f:]*::[0-9A-Fa-f:.]*",
    "ipv4": rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b",
    "phone": "|".join(
        (
            # E.164 and international: +CC then groups, optional (area)
            r"\+[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{2,5}\)?){2,5}\b",
            r"\+[1-9][0-9]{7,14}\b",
            # North American: (415) 555-0123, 415-555-0123, 415.555.0123, 415 555 0123
            r"(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}\b",
            # trunk-prefixed national: 020 7946 0958, 07700 900123, 030 12345678
            r"\b0[1-9][0-9]{1,4}[ .-][0-9]{3,4}[ .-]?[0-9]{3,4}\b",
            # French style: 01 23 45 67 89
            r"\b0[1-9](?:[ .][0-9]{2}){4}\b",
        )
    ),
    "api_key": r"[A-Za-z0-9_-]{20,}",
}


def luhn_ok(digits: str) -> bool:
    """True if the digit string passes the Luhn checksum (payment cards)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """True if ``text`` (spaces allowed) is an IBAN with a valid mod-97 check."""
    iban = text.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _card(match: re.Match[str]) -> bool:
    digits = re.sub("[ -]", "", match.group())
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _iban(match: re.Match[str]) -> bool:
    return iban_ok(match.group())


def _bearer(match: re.Match[str]) -> bool:
    token = match.group().split()[-1]
    has_digit = any(c.isdigit() for c in token)
    mixed_case = token.lower() != token and token.upper() != token
    return has_digit or (len(token) >= 20 and mixed_case)


def _ipv6(match: re.Match[str]) -> bool:
    text, start = match.group().rstrip(":."), match.start()
    if start and (match.string[start - 1].isalnum() or match.string[start - 1] in "_:"):
        return False  # std::vector, Foo::Bar: part of a longer word
    if text.count(":") < 2 or text == "::":
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_KEY_PREFIXES = ("sk_", "pk_", "rk_", "sk-", "ghp_", "gho_", "ghs_", "github_pat_", "glpat-",
                 "xoxb-", "xoxp-", "xoxa-", "AKIA", "ASIA", "AIza")


def entropy(token: str) -> float:
    """Shannon entropy of ``token`` in bits per character."""
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def _api_key(match: re.Match[str]) -> bool:
    token, start = match.group(), match.start()
    if start and (match.string[start - 1].isalnum()):
        return False  # a slice of a longer non-ASCII word
    if token.startswith(_KEY_PREFIXES) and len(token) >= 20:
        return True
    if len(token) < 24 or _UUID.fullmatch(token):
        return False
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    return digits >= 2 and letters >= 4 and entropy(token) >= 3.5


_CHECKS: dict[str, Callable[[re.Match[str]], bool]] = {
    "card": _card,
    "iban": _iban,
    "bearer": _bearer,
    "ipv6": _ipv6,
    "api_key": _api_key,
}


@dataclass(frozen=True)
class Rule:
    """One scanner: ``kind`` names the mask; ``check`` (if any) confirms a regex match."""

    kind: str
    pattern: str
    check: Callable[[re.Match[str]], bool] | None = None

    @property
    def mask(self) -> str:
        return f"<{self.kind}>"


RULES: tuple[Rule, ...] = tuple(Rule(k, _PATTERNS[k], _CHECKS.get(k)) for k in KINDS)


class Scanner:
    """Masks PII in string columns. Stateless and thread-safe; build once, reuse."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules
        self._compiled = {r.kind: re.compile(r.pattern) for r in rules if r.check}

    def mask_text(self, text: str) -> str:
        """Mask one string (convenience; columns go through :meth:`mask`)."""
        return self.mask(pl.Series([text], dtype=pl.String))[0][0]

    def mask(self, column: pl.Series) -> tuple[pl.Series, Counter[str]]:
        """Return ``column`` (String) with every finding masked, and counts by kind."""
        column = column.cast(pl.String)
        out = self._pass(column)
        changed = out.ne_missing(column)
        for _ in range(_MAX_ROUNDS - 1):
            if not changed.any():
                break
            idx = changed.arg_true()
            before = out.gather(idx)
            after = self._pass(before)
            out = out.scatter(idx, after)
            changed = pl.Series(values=[False] * len(out)).scatter(idx, after.ne_missing(before))
        return out, _count_masks(column, out)

    def _pass(self, column: pl.Series) -> pl.Series:
        for rule in self.rules:
            if rule.check is None:
                column = column.str.replace_all(rule.pattern, rule.mask)
            else:
                column = self._checked(column, rule)
        return column

    def _checked(self, column: pl.Series, rule: Rule) -> pl.Series:
        hits = column.str.contains(rule.pattern).fill_null(False)
        if not hits.any():
            return column
        idx = hits.arg_true()
        regex, check, mask = self._compiled[rule.kind], rule.check, rule.mask
        assert check is not None

        def sub(match: re.Match[str]) -> str:
            return mask if check(match) else match.group()

        new = [regex.sub(sub, text) for text in column.gather(idx).to_list()]
        return column.scatter(idx, pl.Series(new, dtype=pl.String))


def _count_masks(before: pl.Series, after: pl.Series) -> Counter[str]:
    counts: Counter[str] = Counter()
    pattern = _MASK_COUNT.pattern
    for sign, col in ((1, after), (-1, before)):
        found = col.str.extract_all(pattern).explode().drop_nulls()
        for mask, n in found.value_counts().iter_rows():
            counts[mask[1:-1]] += sign * n
    return +counts
