"""A labelled PII corpus: values each scanner must mask, and text none may touch.

``POSITIVES`` pairs a kind with a value; tests embed each value in free text,
in allowed JSON fields (nested and in lists) and check that it is masked as
that kind. ``NEGATIVES`` are strings that look a little like PII but are not:
they must come out unchanged. All values are synthetic or published test
values (example.com, documentation IP ranges, test card numbers).
"""

from __future__ import annotations

POSITIVES: tuple[tuple[str, str], ...] = (
    # e-mail
    ("email", "alice@example.com"),
    ("email", "bob.smith+tag@mail.example.co.uk"),
    ("email", "first_last-99@sub.example.org"),
    ("email", "UPPER.Case@Example.COM"),
    # phone: E.164 and national formats
    ("phone", "+14155550123"),
    ("phone", "+1 415 555 0123"),
    ("phone", "+1-415-555-0123"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+49 30 12345678"),
    ("phone", "+33 1 23 45 67 89"),
    ("phone", "(415) 555-0123"),
    ("phone", "415-555-0123"),
    ("phone", "415.555.0123"),
    ("phone", "020 7946 0958"),
    ("phone", "07700 900123"),
    ("phone", "01 23 45 67 89"),
    # payment cards (Luhn-valid test numbers)
    ("card", "4111111111111111"),
    ("card", "4111 1111 1111 1111"),
    ("card", "5500-0000-0000-0004"),
    ("card", "378282246310005"),
    ("card", "6011111111111117"),
    ("card", "4242424242424242"),
    # IP addresses
    ("ipv4", "192.168.1.20"),
    ("ipv4", "10.0.0.1"),
    ("ipv4", "203.0.113.255"),
    ("ipv6", "2001:db8::8a2e:370:7334"),
    ("ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("ipv6", "fe80::1"),
    ("ipv6", "::1"),
    # tokens
    ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("bearer", "Bearer abc123def456ghi789"),
    ("bearer", "bearer 9f8e7d6c5b4a39281706"),
    ("api_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("api_key", "AKIAIOSFODNN7EXAMPLE"),
    ("api_key", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("api_key", "x9Fq2LmZ7pR4tV8wK3nB6yH1cD5gJ0sA"),
    # IBAN (mod-97 valid)
    ("iban", "DE89370400440532013000"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82WEST12345698765432"),
    ("iban", "FR1420041010050500013M02606"),
    # US social security numbers
    ("ssn", "078-05-1120"),
    ("ssn", "123-45-6789"),
)

NEGATIVES: tuple[str, ...] = (
    "3-1042",  # a correlation id
    "cid 12-99 seq 1042",
    "2026-11-03T12:30:45.123Z",  # ISO timestamps and dates
    "2026-11-03 12:30:45",
    "2026-11-03",
    "at 12:30:45 on 03/11/2026",
    "1.5",  # decimals and versions
    "-0.25e3 and 3.14159",
    "version 1.2.3",
    "4111111111111112",  # 16 digits failing Luhn: not a card
    "4111 1111 1111 1112",
    "order 12345678 shipped",
    "GB82WEST12345698765433",  # IBAN-shaped, bad checksum
    "000-12-3456",  # not a valid SSN area
    "550e8400-e29b-41d4-a716-446655440000",  # a UUID
    "std::vector<int> and Foo::Bar",
    "the bearer of bad news",
    "internationalization and localization",
    "supercalifragilisticexpialidocious",
    "user_preferences_updated",
    "the quick brown fox jumps over the lazy dog",
    "HTTP 200 OK in 35 ms",
    "temperature 21.5C humidity 40%",
    "price 19.99 EUR, qty 3, total 59.97",
    "room 101, floor 4",
)

CONTEXTS: tuple[str, ...] = (
    "{}",
    "contact: {} thanks",
    "({})",
    "value={};",
    "see {}.",
)
