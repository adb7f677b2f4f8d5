"""Domain normalisation: pure functions, no app needed."""

import pytest

from tracker.domains import DomainError, display_domain, normalize_domain, parse_domains


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("  shop.example.com  ", "shop.example.com"),
        ("https://www.Example.com/contacts?x=1#top", "www.example.com"),
        ("http://user:pw@example.com:8080/", "example.com"),
        ("example.com.", "example.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("ПРИМЕР.РФ", "xn--e1afmkfd.xn--p1ai"),
        ("https://магазин.пример.рф/", "xn--80aairftm.xn--e1afmkfd.xn--p1ai"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_normalize_accepts(typed, stored):
    assert normalize_domain(typed) == stored


@pytest.mark.parametrize(
    "typed",
    ["", "   ", "com", "bad_domain.com", "-a.com", "a-.com", "a..com", "1.2.3",
     "x" * 64 + ".com", "ex ample.com", "*.example.com", "http://", "http://[::1]/",
     "example.123", "<script>.com", "a." * 130 + "com"],
)
def test_normalize_rejects(typed):
    with pytest.raises(DomainError):
        normalize_domain(typed)


def test_parse_domains_splits_dedupes_and_reports_invalid():
    domains, invalid = parse_domains("Example.com, www.example.com\nexample.com;bad_one  пример.рф")
    assert domains == ["example.com", "www.example.com", "xn--e1afmkfd.xn--p1ai"]
    assert invalid == ["bad_one"]


def test_display_domain_shows_unicode():
    assert display_domain("xn--e1afmkfd.xn--p1ai") == "пример.рф"
    assert display_domain("example.com") == "example.com"
    assert display_domain(normalize_domain("Магазин.Пример.рф")) == "магазин.пример.рф"
    assert display_domain("xn--broken-") == "xn--broken-"
