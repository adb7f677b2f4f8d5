"""Translations: Russian is complete, and pages follow the user's or the browser's language."""

import re
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tracker.extensions import db

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "tracker" / "translations" / "ru" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
METHOD_MAP = [("tracker/**.py", "python"), ("tracker/templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def source_messages():
    """Every translatable string in the code and templates, as Babel extracts it."""
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        ROOT, METHOD_MAP, keywords=KEYWORDS, options_map={"tracker/templates/**.html": {}}
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def russian():
    with CATALOG.open("rb") as fh:
        return read_po(fh)


def test_every_ui_string_has_a_russian_translation():
    catalog = russian()
    problems = []
    for msgid in sorted(source_messages()):
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"not in the catalog (run `make extract`): {msgid!r}")
            continue
        strings = [entry.string] if isinstance(entry.string, str) else list(entry.string)
        if not all(strings) or entry.fuzzy:
            problems.append(f"no Russian translation: {msgid!r}")
            continue
        for text in strings:
            if set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(msgid)):
                problems.append(f"placeholders differ: {msgid!r} -> {text!r}")
    assert not problems, "\n".join(problems)


def visible_text(html):
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def english_leftovers(html):
    """English UI strings that show on a page that should be Russian."""
    text = visible_text(html)
    leftovers = []
    for entry in russian():
        msgid = entry.id if isinstance(entry.id, str) else entry.id[0]
        if not msgid or "%(" in msgid or len(msgid) < 4:
            continue
        if re.search(r"(?<![\w@.])" + re.escape(msgid) + r"(?![\w@.])", text):
            leftovers.append(msgid)
    return leftovers


def admin_pages(factory, user):
    site = factory.site(user.account, name="Магазин", domains=["shop.example"])
    return ["/login", "/sites/", "/sites/?q=zzz", "/sites/new", f"/sites/{site.id}",
            f"/sites/{site.id}/edit", f"/sites/{site.id}/delete", "/settings", "/nowhere"]


def test_pages_follow_accept_language(client, factory):
    user = factory.user()
    pages = admin_pages(factory, user)
    headers = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}
    assert "Вход" in client.get("/login", headers=headers).get_data(as_text=True)
    client.login(user)
    for url in pages[1:]:
        html = client.get(url, headers=headers).get_data(as_text=True)
        assert '<html lang="ru">' in html, url
        assert english_leftovers(html) == [], url
    client.csrf_token = client.csrf_token
    bad = client.post("/sites/new", data={"name": ""}, headers=headers).get_data(as_text=True)
    assert "Укажите название сайта." in bad and english_leftovers(bad) == []


def test_english_by_default(client, factory):
    user = factory.user()
    client.login(user)
    html = client.get("/sites/").get_data(as_text=True)
    assert '<html lang="en">' in html and "Sites" in html


def test_users_own_setting_wins(client, factory):
    user = factory.user(locale="ru")
    client.login(user)
    html = client.get("/sites/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="ru">' in html
    response = client.post("/settings", data={"locale": "en"})
    assert response.status_code == 302
    db.session.expire_all()
    html = client.get("/sites/", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert '<html lang="en">' in html


@pytest.mark.parametrize("value", ["xx", "<script>", "e" * 50])
def test_settings_reject_unknown_language(logged_in, value):
    response = logged_in.post("/settings", data={"locale": value})
    assert response.status_code == 422
    assert "Not a valid choice" in response.get_data(as_text=True)
