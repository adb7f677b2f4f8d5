"""Addresses typed into blocks and rules, and the warning about domains no mailbox receives."""

import pytest

from tracker.addresses import (
    AddressError,
    address_domain,
    normalize_address,
    parse_addresses,
    unreceived,
)
from tracker.rules import AddressWarning, address_warnings


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Sales@Shop.EXAMPLE", "sales@shop.example"),
        ("  info@shop.example ", "info@shop.example"),
        ("info@Пример.РФ", "info@пример.рф"),
        ("a+b@shop.example", "a+b@shop.example"),
    ],
)
def test_normalize_address(text, normalized):
    assert normalize_address(text) == normalized


@pytest.mark.parametrize(
    "text",
    ["", "info", "info@", "@shop.example", "info@shop", "a b@shop.example", '"a b"@shop.example',
     "info@localhost", "info@1.2.3.4", "a@b.test", "x" * 310 + "@shop.example",
     "<script>@shop.example"],
)
def test_not_addresses(text):
    with pytest.raises(AddressError):
        normalize_address(text)


def test_parse_addresses_dedupes_and_reports_invalid():
    text = "a@shop.example\nA@SHOP.example, b@shop.example;bad\n\n  c@пример.рф"
    assert parse_addresses(text) == (
        ["a@shop.example", "b@shop.example", "c@пример.рф"], ["bad"])
    assert parse_addresses("Info@Shop.example info@shop.example", keep_as_typed=True) == (
        ["Info@Shop.example"], [])


def test_address_domain_is_ascii():
    assert address_domain("info@Пример.рф") == "xn--e1afmkfd.xn--p1ai"
    assert address_domain("*@shop.example") == "shop.example"
    assert address_domain("nodomain") == ""


def test_unreceived_keeps_order_and_ignores_case():
    domains = {"shop.example", "xn--e1afmkfd.xn--p1ai"}
    addresses = ["a@Shop.Example", "b@other.example", "c@пример.рф", "b@other.example",
                 "*@track.example"]
    assert unreceived(addresses, domains) == ["b@other.example", "*@track.example"]
    assert unreceived(addresses, set()) == ["a@Shop.Example", "b@other.example", "c@пример.рф",
                                            "*@track.example"]


def test_address_warnings_with_explicit_domains():
    warnings = address_warnings(
        1, ["sales@shop.example", "x@пример.рф", None, "y@Пример.рф", "*@track.example"],
        domains={"shop.example"})
    assert warnings == [AddressWarning("пример.рф", ["x@пример.рф", "y@Пример.рф"]),
                        AddressWarning("track.example", ["*@track.example"])]
    assert address_warnings(1, ["sales@shop.example"], domains={"shop.example"}) == []
    assert address_warnings(1, [], domains=set()) == []
