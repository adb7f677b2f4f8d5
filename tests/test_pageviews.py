"""Pure helpers of the page-view path: utm values of a landing URL."""

import pytest

from tracker.pageviews import utm_from

NONE = {"utm_source": "", "utm_medium": "", "utm_campaign": "", "utm_content": "",
        "utm_term": ""}


def test_no_utm_values_give_empty_strings():
    assert utm_from("https://shop.example/prices") == NONE
    assert utm_from("https://shop.example/?page=2&sort=price") == NONE


def test_values_are_decoded():
    utm = utm_from("https://shop.example/?utm_source=yandex&utm_medium=cpc"
                   "&utm_campaign=%D0%B2%D0%B5%D1%81%D0%BD%D0%B0+2024&utm_term=a%26b")
    assert utm == {**NONE, "utm_source": "yandex", "utm_medium": "cpc",
                   "utm_campaign": "весна 2024", "utm_term": "a&b"}


@pytest.mark.parametrize(("query", "source"), [
    ("utm_source=&utm_source=vk", "vk"),  # the first value that is not empty
    ("utm_source=vk&utm_source=ok", "vk"),
    ("xutm_source=vk", ""),  # another parameter whose name ends the same
    ("utm_sources=vk", ""),
    ("UTM_SOURCE=vk", ""),  # names are case-sensitive, as in analytics tools
    ("utm_source=a=b", "a=b"),
])
def test_which_value_counts(query, source):
    assert utm_from("https://shop.example/?" + query)["utm_source"] == source


def test_the_fragment_is_not_the_query_and_values_are_cut():
    assert utm_from("https://shop.example/#utm_source=vk") == NONE
    assert utm_from("https://shop.example/?utm_term=" + "z" * 300)["utm_term"] == "z" * 200
