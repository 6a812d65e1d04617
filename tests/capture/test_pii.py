"""Free-text scanners against the labelled corpus: recall, precision, counts."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from streambench.capture.pii import KINDS, Scanner, entropy, iban_ok, luhn_ok
from tests.capture.pii_corpus import CONTEXTS, NEGATIVES, POSITIVES


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def measure(scanner: Scanner) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Recall and precision by kind over every positive in every context and every
    negative; returns them with a list of what went wrong, for the assertion message."""
    texts, expected = [], []
    for kind, value in POSITIVES:
        for context in CONTEXTS:
            texts.append(context.format(value))
            expected.append((kind, context.format(f"<{kind}>")))
    texts += NEGATIVES
    expected += [(None, text) for text in NEGATIVES]
    masked, _ = scanner.mask(pl.Series(texts, dtype=pl.String))
    true_pos, false_neg, false_pos = Counter(), Counter(), Counter()
    problems = []
    for text, got, (kind, want) in zip(texts, masked.to_list(), expected, strict=True):
        if got == want:
            if kind:
                true_pos[kind] += 1
            continue
        problems.append(f"{text!r} -> {got!r} (wanted {want!r})")
        if kind:
            false_neg[kind] += 1
        for other in KINDS:
            false_pos[other] += got.count(f"<{other}>") - want.count(f"<{other}>")
    recall = {k: true_pos[k] / ((true_pos[k] + false_neg[k]) or 1) for k in KINDS}
    precision = {k: true_pos[k] / ((true_pos[k] + max(false_pos[k], 0)) or 1) for k in KINDS}
    return recall, precision, problems


def test_corpus_covers_every_kind():
    assert {kind for kind, _ in POSITIVES} == set(KINDS)


def test_recall_is_one_and_no_negative_is_masked(scanner: Scanner):
    recall, precision, problems = measure(scanner)
    assert problems == []
    assert recall == dict.fromkeys(KINDS, 1.0)
    assert precision == dict.fromkeys(KINDS, 1.0)


def test_positives_inside_longer_text_and_side_by_side(scanner: Scanner):
    text = "mail alice@example.com, call +1 415 555 0123; card 4111 1111 1111 1111 from 10.0.0.1"
    assert scanner.mask_text(text) == "mail <email>, call <phone>; card <card> from <ipv4>"


def test_counts_by_kind_and_nulls_stay_null(scanner: Scanner):
    column = pl.Series(["a@example.com and b@example.com", None, "ssn 078-05-1120", "plain"])
    masked, counts = scanner.mask(column)
    assert masked.to_list() == ["<email> and <email>", None, "ssn <ssn>", "plain"]
    assert counts == {"email": 2, "ssn": 1}


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"

def test_a_column_of_few_values_is_masked_and_counted_row_by_row(scanner: Scanner):
    # scanned once per distinct value: the rows and the counts are those of every row
    values = ["a@example.com and b@example.com", None, "plain", "ssn 078-05-1120", "plain",
              f"devices/{JWT}", "x Bearer abcdef123456789 y"]
    column = pl.Series(values * 40)
    one = [scanner.mask(pl.Series([v], dtype=pl.String)) for v in values]
    for _ in range(2):  # again: the clean values are remembered, the others scanned again
        masked, counts = scanner.mask(column)
        assert masked.to_list() == [m[0] for m, _ in one] * 40
        by_row = sum((c for _, c in one), Counter())
        assert counts == Counter({kind: 40 * n for kind, n in by_row.items()})
        assert counts["email"] == 80
        assert counts["ssn"] == 40
    assert masked[5] == "devices/<jwt>"
    assert masked[6] == "x <bearer> y"
    plain = pl.Series(["plain", None, "more plain text"] * 40)
    kept, none = scanner.mask(plain)
    assert kept.to_list() == plain.to_list()
    assert none == Counter()
    assert scanner.mask(pl.Series([], dtype=pl.String))[0].to_list() == []


@pytest.mark.parametrize("distinct", [3, 200], ids=["few-values", "many-values"])
def test_jwt_and_bearer_findings_are_counted_and_the_input_is_left_alone(
        scanner: Scanner, distinct: int):
    values = [f"token {JWT}", "Authorization: Bearer abcdef123456789"]
    values += [f"plain {i}" for i in range(distinct - len(values))]
    column = pl.Series(values)
    masked, counts = scanner.mask(column)
    assert masked[:2].to_list() == ["token <jwt>", "Authorization: <bearer>"]
    assert counts == Counter({"jwt": 1, "bearer": 1})
    assert column.to_list() == values  # the caller's series is not written into


def test_masks_already_present_are_not_counted_again(scanner: Scanner):
    masked, counts = scanner.mask(pl.Series(["<email> and a@example.com"]))
    assert masked.to_list() == ["<email> and <email>"]
    assert counts == {"email": 1}


def test_a_greedy_card_match_still_finds_the_card_before_a_trailing_group(scanner: Scanner):
    assert scanner.mask_text("4242424242424242 1234") == "<card> 1234"


def test_checksums():
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82")


def test_entropy_separates_keys_from_words():
    assert entropy("x9Fq2LmZ7pR4tV8wK3nB6yH1cD5gJ0sA") > 4.0
    assert entropy("aaaaaaaaaaaaaaaaaaaaaaaa") == 0.0


def test_non_ascii_text_is_scanned_and_kept(scanner: Scanner):
    text = "Grüße an zoë@example.com — ☎ +49 30 12345678, 東京"
    assert scanner.mask_text(text) == "Grüße an <email> — ☎ <phone>, 東京"


def test_a_card_after_a_phone_number_is_found_once_the_phone_is_masked():
    # the greedy card candidate starts inside the phone number and fails its check
    assert Scanner().mask_text("(415) 555-0123 4111 1111 1111 1111") == "<phone> <card>"


@pytest.mark.parametrize(("text", "masked"), [
    # a card after another long digit run: the card can start after any separator
    ("555-0123 4111 1111 1111 1111", "555-0123 <card>"),
    ("order 20240101 5555 5555 5555 4444 paid", "order 20240101 <card> paid"),
    ("4111 1111 1111 1111 5555-5555-5555-4444", "<card> <card>"),
    ("4111 1111 1111 1111 555-0123", "<card> 555-0123"),
])
def test_every_card_in_a_run_of_digits_is_masked(text: str, masked: str):
    assert Scanner().mask_text(text) == masked


def test_a_long_run_of_digit_pairs_holds_no_card_and_costs_no_quadratic_search():
    run = " ".join(["33"] * 20_000) + " 4111 1111 1111 1111"
    assert Scanner().mask_text(run) == run.removesuffix(" 4111 1111 1111 1111") + " <card>"
