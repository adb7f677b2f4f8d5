"""The key:value search language shared by lists."""

import pytest

from tracker.search import InvalidValue, Term, apply, like_pattern, parse, parse_bool, quote

KEYS = {"type", "block", "active"}


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", []),
        ("summer", [Term(None, "summer")]),
        ("summer sale", [Term(None, "summer"), Term(None, "sale")]),
        ('"summer sale"', [Term(None, "summer sale")]),
        ("type:dynamic", [Term("type", "dynamic")]),
        ("TYPE:dynamic", [Term("type", "dynamic")]),
        ('block:"Contact email" x', [Term("block", "Contact email"), Term(None, "x")]),
        ("block:Контакты", [Term("block", "Контакты")]),
        ('block:"unterminated value', [Term("block", "unterminated value")]),
        ("color:red", [Term(None, "color:red")]),
        ("type:", [Term(None, "type:")]),
        ("info@shop.example", [Term(None, "info@shop.example")]),
        ('type:static active:no "a b" c',
         [Term("type", "static"), Term("active", "no"), Term(None, "a b"), Term(None, "c")]),
        ('""', []),
    ],
)
def test_parse(text, terms):
    assert parse(text, KEYS) == terms


def test_parse_is_bounded():
    assert len(parse("w " * 500, KEYS)) == 20


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("On", True), ("1", True),
                                             ("да", True), ("no", False), ("нет", False),
                                             ("off", False), ("0", False)])
def test_parse_bool(text, value):
    assert parse_bool(text) is value


def test_parse_bool_refuses_other_words():
    with pytest.raises(InvalidValue):
        parse_bool("maybe")


def test_apply_runs_one_filter_per_key_and_reports_bad_values():
    def by_type(query, value):
        if value not in ("static", "dynamic"):
            raise InvalidValue(value)
        return query + [("type", value)]

    terms = parse("type:static type:banana hello", {"type"})
    query, invalid = apply([], terms, {"type": by_type}, lambda q, text: q + [("text", text)])
    assert query == [("type", "static"), ("text", "hello")]
    assert invalid == [Term("type", "banana")]


def test_like_pattern_escapes_wildcards():
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_quote():
    assert quote("plain") == "plain"
    assert quote("two words") == '"two words"'
