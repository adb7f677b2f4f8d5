"""Tokens for dynamic addresses: short, random, readable, unique through the caller's check."""

import itertools

import pytest

from tracker.tokens import (
    ALPHABET,
    LENGTH,
    TokenSpaceExhausted,
    catch_all_address,
    is_token,
    new_token,
    random_token,
    sub_address,
)


def test_alphabet_has_no_look_alikes_and_no_uppercase():
    assert not set(ALPHABET) & set("01ilo")
    assert ALPHABET == ALPHABET.lower() and ALPHABET.isalnum() and ALPHABET.isascii()
    assert len(set(ALPHABET)) == len(ALPHABET) == 31


def test_tokens_are_short_and_drawn_from_the_alphabet():
    tokens = [random_token() for _ in range(2000)]
    assert all(len(token) == LENGTH and set(token) <= set(ALPHABET) for token in tokens)
    assert len(set(tokens)) == len(tokens)
    # Every symbol turns up: the draw is not stuck on part of the alphabet.
    assert set("".join(tokens)) == set(ALPHABET)


def test_new_token_retries_until_exists_says_no():
    taken = set()
    answers = itertools.chain([True, True, True], itertools.repeat(False))
    token = new_token(lambda t: taken.add(t) or next(answers))
    assert len(taken) == 4 and token in taken


def test_new_token_gives_up_instead_of_looping_forever():
    calls = []
    with pytest.raises(TokenSpaceExhausted):
        new_token(lambda t: calls.append(t) or True, attempts=5)
    assert len(calls) == 5


def test_unique_per_site_through_the_callback():
    used = {"site-1": set(), "site-2": set()}
    for site in used:
        for _ in range(300):
            used[site].add(new_token(lambda t, site=site: t in used[site], length=3))
    assert all(len(tokens) == 300 for tokens in used.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [("k7m3x9q2ab", True), ("K7M3X9Q2AB", True), ("k7m3x9q2a", False), ("k7m3x9q2al", False),
     ("k7m3x9q2a0", False), ("", False), (None, False)],
)
def test_is_token(text, expected):
    assert is_token(text) is expected


def test_addresses_from_tokens():
    assert sub_address("sales@shop.example", "abc") == "sales+abc@shop.example"
    assert sub_address("o.brien@пример.рф", "abc") == "o.brien+abc@пример.рф"
    assert catch_all_address("track.shop.example", "abc") == "abc@track.shop.example"
