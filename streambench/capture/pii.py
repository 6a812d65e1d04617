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
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# Scanner.mask scans distinct values first when a column holds at most _FEW of them or
# one in _DISTINCT_SHARE of its rows; it remembers up to _CLEAN_VALUES values of at most
# _CLEAN_CHARS characters that hold nothing, so a later batch need not scan them again.
_FEW = 64
_DISTINCT_SHARE = 8
_CLEAN_VALUES = 10_000
_CLEAN_CHARS = 1024
KINDS = ("jwt", "bearer", "email", "iban", "card", "ssn", "ipv6", "ipv4", "phone", "api_key")
_MAX_ROUNDS = 4

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_HEX = "[0-9A-Fa-f]"
_PATTERNS = {
    "jwt": r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    "bearer": r"(?i:bearer)[ \t]+[A-Za-z0-9._~+/=-]{8,}",
    # Unicode letters in both parts (zoë@example.com); the only rule in Unicode mode
    "email": r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}",
    "iban": r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    # a run of digits with single separators that may hold a card (_cards finds them):
    # 13+ digits from a 2-6, or any run with a separator (a card may start after one);
    # not a bare number like a nanosecond timestamp, which cannot hold a card
    "card": r"\b(?:[2-6][0-9](?:[ -]?[0-9]){11,}|[0-9]+(?:[ -][0-9]+)+)\b",
    "ssn": r"\b(?:00[1-9]|0[1-9][0-9]|[1-578][0-9]{2}|6[0-57-9][0-9]|66[0-57-9])"
    r"-(?:0[1-9]|[1-9][0-9])-(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})\b",
    "ipv6": rf"(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}|[0-9A-Fa-f:]*::[0-9A-Fa-f:.]*",
    "ipv4": rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b",
    "phone": "|".join(
        (
            # E.164 and international: +CC then groups, optional (area)
            r"\+[1-9][0-9]{0,3}(?:[ .-]\(?[0-9]{1,8}\)?){1,5}[ .-][0-9]{2,8}\b",
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


def _valid_prefix(text: str, ok: Callable[[str], bool]) -> int:
    """Length of the longest prefix of ``text`` that ends at a separator (or the end)
    and passes ``ok``; 0 if none. A greedy match can swallow a following group."""
    cuts = [len(text), *[m.start() for m in re.finditer("[ -]", text)][::-1]]
    return next((cut for cut in cuts if ok(text[:cut])), 0)


def _cards(run: str) -> list[tuple[str, str]]:
    """The cards in ``run`` (digits with single spaces or dashes), each with its
    mask, leftmost first and then longest. A card starts at the run's start or
    after any separator, not only where a greedy match began:
    "555-0123 4111 1111 1111 1111" holds one, after a phone-like number."""
    seps = [m.start() for m in re.finditer("[ -]", run)]
    starts, ends = [0, *[i + 1 for i in seps]], [*seps, len(run)]
    before = [0]  # digits before each position
    for ch in run:
        before.append(before[-1] + ch.isdigit())
    digits_at = [before[e] for e in ends]  # rising: a bisection finds 13-19 digits
    found, done = [], 0
    for start in starts:
        if start < done or run[start] not in "23456" or not run[start + 1:start + 2].isdigit():
            continue
        first = before[start]
        fits = ends[bisect_left(digits_at, first + 13):bisect_right(digits_at, first + 19)]
        end = next((e for e in reversed(fits) if luhn_ok(re.sub("[ -]", "", run[start:e]))), 0)
        if end:
            found.append((run[start:end], "<card>"))
            done = end
    return found


def _iban(candidate: str) -> list[tuple[str, str]]:
    n = _valid_prefix(candidate, iban_ok)
    return [(candidate, "<iban>" + candidate[n:])] if n else []


def _bearer(match: re.Match[str]) -> int:
    token = match.group().split()[-1]
    has_digit = any(c.isdigit() for c in token)
    mixed_case = token.lower() != token and token.upper() != token
    if not (has_digit or (len(token) >= 20 and mixed_case)):
        return 0
    return len(match.group().rstrip("."))  # a full stop ends the sentence, not the token


def _ipv6(match: re.Match[str]) -> int:
    text, start = match.group().rstrip(":."), match.start()
    if start and (match.string[start - 1].isalnum() or match.string[start - 1] in "_:"):
        return 0  # std::vector, Foo::Bar: part of a longer word
    if text.count(":") < 2 or text == "::":
        return 0
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return 0
    return len(text)


_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_KEY_PREFIXES = ("sk_", "pk_", "rk_", "sk-", "ghp_", "gho_", "ghs_", "github_pat_", "glpat-",
                 "xoxb-", "xoxp-", "xoxa-", "AKIA", "ASIA", "AIza")


def entropy(token: str) -> float:
    """Shannon entropy of ``token`` in bits per character."""
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def _api_key(match: re.Match[str]) -> int:
    token, start = match.group(), match.start()
    if start and match.string[start - 1].isalnum():
        return 0  # a slice of a longer non-ASCII word
    if token.startswith(_KEY_PREFIXES):
        return len(token)
    if len(token) < 24 or _UUID.fullmatch(token):
        return 0
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    return len(token) if digits >= 2 and letters >= 4 and entropy(token) >= 3.5 else 0


# A check returns how many leading characters of a regex match to mask (0: none).
_CHECKS: dict[str, Callable[[re.Match[str]], int]] = {
    "bearer": _bearer,
    "ipv6": _ipv6,
    "api_key": _api_key,
}


# Kinds whose check needs only the matched text: each distinct candidate is checked
# once, giving the pieces of it to replace (none: not this kind), and the pieces are
# applied with a literal multi-replace; the checks above look at the context.
_REWRITES: dict[str, Callable[[str], list[tuple[str, str]]]] = {"card": _cards, "iban": _iban}


def _rust(kind: str, pattern: str) -> str:
    """The Rust-regex form: ASCII classes and word boundaries (the Python side
    compiles with re.ASCII), which keeps polars on its fast DFA."""
    return pattern if kind == "email" else f"(?-u:{pattern})"


# Literals a row must hold for a rule to apply: rows without them are skipped.
_PREFILTERS = {"jwt": "eyJ", "ipv6": ":"}


@dataclass(frozen=True)
class Rule:
    """One scanner: ``kind`` names the mask; ``check`` (if any) confirms a regex match
    by returning the length of its prefix to mask (0: not this kind)."""

    kind: str
    pattern: str
    check: Callable[[re.Match[str]], int] | None = None

    @property
    def mask(self) -> str:
        return f"<{self.kind}>"


RULES: tuple[Rule, ...] = tuple(Rule(k, _PATTERNS[k], _CHECKS.get(k)) for k in KINDS)
# A mask touching a character a pattern can contain may open a new match next to
# it: only rows where that happens are scanned again.
# A space counts: a phone number swallowed by a longer card candidate ("(415) 555-0123
# 4111 1111 1111 1111") leaves the card to find once the phone is masked.
_RESCAN = (rf"[0-9A-Za-z_@.:+( -]<(?:{'|'.join(KINDS)})>"
           rf"|<(?:{'|'.join(KINDS)})>[0-9A-Za-z_@.:+) -]")


class Scanner:
    """Masks PII in string columns. Build once, reuse; one caller at a time."""

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules
        self._python = {r.kind: re.compile(r.pattern, re.ASCII) for r in rules if r.check}
        self._rust = {r.kind: _rust(r.kind, r.pattern) for r in rules}
        self._rescan = _rust("", _RESCAN)
        self._verdicts: dict[str, list[tuple[str, str]]] = {}
        self._clean: set[str] = set()  # values a scan left as they were (Scanner.mask)

    def mask_text(self, text: str) -> str:
        """Mask one string (convenience; columns go through :meth:`mask`)."""
        return str(self.mask(pl.Series([text], dtype=pl.String))[0][0])

    def mask(self, column: pl.Series) -> tuple[pl.Series, Counter[str]]:
        """Return ``column`` as String with every finding masked, and counts by kind.

        A row's result depends on its value alone, and only rows that change are
        counted. So a column of few distinct values (a body pool's text, sent and
        echoed back in every message; a topic) is scanned once per value, values
        found clean before (in an earlier batch) not at all, and only the rows whose
        value holds something are scanned row by row, for their counts.
        """
        column = column.cast(pl.String)
        if column.is_empty():
            return column, Counter()
        firsts = column.arg_unique()
        if len(firsts) > _FEW and len(firsts) * _DISTINCT_SHARE > len(column):
            return self._mask_rows(column)
        clean = self._clean
        unknown = [v for v in column.gather(firsts).to_list() if v is not None and v not in clean]
        dirty = []
        if unknown:
            values = pl.Series(unknown, dtype=pl.String)
            changed = self._mask_rows(values)[0].ne_missing(values).to_list()
            dirty = [v for v, c in zip(unknown, changed, strict=True) if c]
            if len(clean) + len(unknown) > _CLEAN_VALUES:
                clean.clear()
            clean.update(v for v, c in zip(unknown, changed, strict=True)
                         if not c and len(v) <= _CLEAN_CHARS)
        if not dirty:
            return column, Counter()
        rows = column.is_in(pl.Series(dirty, dtype=pl.String)).arg_true()
        out, counts = self._mask_rows(column.gather(rows))
        return column.scatter(rows, out), counts

    def _mask_rows(self, column: pl.Series) -> tuple[pl.Series, Counter[str]]:
        # a clone: _pass scatters into the series it is given (Series.scatter is in place),
        # and a row it changed must differ from the input to be counted and rescanned
        out = self._pass(column.clone())
        changed = out.ne_missing(column).arg_true()
        counts = _count_masks(column.gather(changed), out.gather(changed))
        again = changed
        for _ in range(_MAX_ROUNDS - 1):
            near_mask = out.gather(again).str.contains(self._rescan).fill_null(False)
            again = again.filter(near_mask)
            if not len(again):
                break
            before = out.gather(again)
            after = self._pass(before)
            out = out.scatter(again, after)
            counts.update(_count_masks(before, after))
        return out, +counts

    def _pass(self, column: pl.Series) -> pl.Series:
        for rule in self.rules:
            pattern = self._rust[rule.kind]
            rewrite = _REWRITES.get(rule.kind)
            if rule.check is None and rewrite is None and rule.kind not in _PREFILTERS:
                column = column.str.replace_all(pattern, rule.mask)
                continue
            prefilter = _PREFILTERS.get(rule.kind)
            if prefilter is not None:
                hits = column.str.contains(prefilter, literal=True)
            else:
                hits = column.str.contains(pattern)
            rows = hits.fill_null(False).arg_true()
            if not len(rows):
                continue
            found = column.gather(rows)
            if rewrite is not None:
                new = self._by_candidate(found, rule.kind, rewrite)
            elif rule.check is None:
                new = found.str.replace_all(pattern, rule.mask)
            else:
                new = self._by_match(found, rule)
            column = column.scatter(rows, new)
        return column

    def _by_candidate(self, found: pl.Series, kind: str,
                      rewrite: Callable[[str], list[tuple[str, str]]]) -> pl.Series:
        """Check each distinct candidate once; replace the pieces found literally."""
        pieces: dict[str, str] = {}
        candidates = found.str.extract_all(self._rust[kind]).explode().drop_nulls()
        for text in candidates.unique().to_list():
            key = f"{kind}\x1f{text}"
            if key not in self._verdicts:
                self._verdicts[key] = rewrite(text)
                if len(self._verdicts) > 100_000:
                    self._verdicts.clear()
            pieces.update(self._verdicts.get(key) or ())
        if not pieces:
            return found
        return found.str.replace_many(list(pieces), list(pieces.values()))

    def _by_match(self, found: pl.Series, rule: Rule) -> pl.Series:
        regex, check, mask = self._python[rule.kind], rule.check, rule.mask
        assert check is not None

        def sub(match: re.Match[str]) -> str:
            n = check(match)
            return mask + match.group()[n:] if n else match.group()

        return pl.Series([regex.sub(sub, text) for text in found.to_list()], dtype=pl.String)


_MASKS = f"<(?:{'|'.join(KINDS)})>"


def _count_masks(before: pl.Series, after: pl.Series) -> Counter[str]:
    """Masks in ``after`` that were not in ``before``, by kind."""
    counts: Counter[str] = Counter()
    for sign, column in ((1, after), (-1, before)):
        if sign < 0 and not before.str.contains("<", literal=True).any():
            break
        found = column.str.extract_all(_MASKS).explode().drop_nulls()
        for mask, n in found.value_counts().iter_rows():
            counts[mask[1:-1]] += sign * n
    return counts
