"""CSS selectors built from a block's attribute and value, escaped as the CSS spec says."""

import pytest

from tracker.selectors import SelectorError, build_selector, css_identifier, css_string


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("contact", "contact"),
        ("contact-email_2", "contact-email_2"),
        ("1st", "\\31 st"),
        ("-1x", "-\\31 x"),
        ("-", "\\-"),
        ("--x", "--x"),
        ("a b", "a\\ b"),
        ('say"hi"', 'say\\"hi\\"'),
        ("it's", "it\\'s"),
        ("back\\slash", "back\\\\slash"),
        ("a.b:c#d", "a\\.b\\:c\\#d"),
        ("[x]", "\\[x\\]"),
        ("почта", "почта"),
        ("☎mail", "☎mail"),
        ("tab\there", "tab\\9 here"),
        ("nul\0", "nul\ufffd"),
        ("del\x7f", "del\\7f "),
    ],
)
def test_identifier_escaping_follows_css_escape(text, escaped):
    assert css_identifier(text) == escaped


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('a "quoted" word', '"a \\"quoted\\" word"'),
        ("it's", '"it\'s"'),
        ("C:\\path", '"C:\\\\path"'),
        ("two\nlines", '"two\\a lines"'),
        ("почта", '"почта"'),
    ],
)
def test_string_escaping(text, quoted):
    assert css_string(text) == quoted


@pytest.mark.parametrize(
    ("kind", "value", "name", "selector"),
    [
        ("id", "contact-email", None, "#contact-email"),
        ("id", "  2nd-email ", None, "#\\32 nd-email"),
        ("id", "mail:main", None, "#mail\\:main"),
        ("id", "почта", None, "#почта"),
        ("class", "email", None, ".email"),
        ("class", "btn  contact\tlink", None, ".btn.contact.link"),
        ("class", "w-1/2", None, ".w-1\\/2"),
        ("other", "contact email", "data-role", '[data-role="contact email"]'),
        ("other", 'say "hi"', "data-x", '[data-x="say \\"hi\\""]'),
        ("other", "a\\b", "itemprop", '[itemprop="a\\\\b"]'),
        ("other", "x", "xml:lang", '[xml\\:lang="x"]'),
        ("other", "line\nbreak", "title", '[title="line\\a break"]'),
    ],
)
def test_build_selector(kind, value, name, selector):
    assert build_selector(kind, value, name) == selector


@pytest.mark.parametrize(
    ("kind", "value", "name", "reason"),
    [
        ("tag", "x", None, "kind"),
        ("id", "", None, "empty"),
        ("id", "   ", None, "empty"),
        ("id", "two words", None, "spaces"),
        ("id", "bell\x07", None, "control"),
        ("other", "x", "", "name"),
        ("other", "x", "1abc", "name"),
        ("other", "x", "data role", "name"),
        ("other", "x", 'a"b', "name"),
        ("other", "x", "a" * 101, "name"),
        ("class", "x" * 501, None, "too_long"),
        ("other", "x", "on-click>", "name"),
    ],
)
def test_bad_input_is_refused_with_a_reason(kind, value, name, reason):
    with pytest.raises(SelectorError) as caught:
        build_selector(kind, value, name)
    assert caught.value.reason == reason
