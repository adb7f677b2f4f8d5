"""Translations: Russian is complete, and pages follow the user's or the browser's language."""

import io
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from openpyxl import load_workbook

from tracker.extensions import db
from tracker.models import Display, PoolUsage, utcnow
from tracker.reports.periods import local_day, zone

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
    # Time zone names are data (IANA names such as America/Port_of_Spain), not UI text.
    html = re.sub(r'<select[^>]*name="timezone".*?</select>', " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def english_leftovers(html):
    """English UI strings that show on a page that should be Russian."""
    text = visible_text(html)
    leftovers = []
    for entry in russian():
        msgid = entry.id if isinstance(entry.id, str) else entry.id[0]
        if not msgid or "%(" in msgid or len(msgid) < 4:
            continue
        # Not part of a longer word, an address, or a search filter such as tracked:yes.
        if re.search(r"(?<![\w@.])" + re.escape(msgid) + r"(?![\w@.]|:\S)", text):
            leftovers.append(msgid)
    return leftovers


def admin_pages(factory, user):
    site = factory.site(user.account, name="Магазин", domains=["shop.example"])
    return ["/login", "/sites/", "/sites/?q=zzz", "/sites/new", f"/sites/{site.id}",
            f"/sites/{site.id}/edit", f"/sites/{site.id}/delete", "/settings", "/nowhere",
            *report_pages(factory, user, site)]


def report_pages(factory, user, site):
    """The reports with data behind every explanation: the dashboard against a previous
    period, the emails list (and its notice about an unknown filter value), an email
    that counted, a repeat, tracked emails of each kind, a visit and a pool rule's usage."""
    account = user.account
    account.timezone = "Europe/Moscow"
    db.session.commit()
    now = utcnow()
    factory.site(account, name="Лендинг")  # no page view yet: the set-up box says so
    block = factory.block(account, name="Контакты в подвале", sites=[site])
    pool = factory.rule(account, name="Пул для рекламы", blocks=[block], mode="pool",
                        pool=["p1@shop.example", "p2@shop.example"],
                        fallback_address="info@shop.example")
    static = factory.rule(account, name="Яндекс Директ", blocks=[block],
                          address="direct@shop.example",
                          conditions=[("utm_source", "equals", "yandex")])
    token = factory.rule(account, name="Подадреса", blocks=[block], mode="subaddress",
                         base_address="sales@shop.example")
    box = factory.mailbox(account)
    factory.mailbox(account, active=False)
    visit = factory.visit(
        site, at=now - timedelta(hours=3), last_seen_at=now - timedelta(hours=2, minutes=40),
        landing_url="https://shop.example/catalog?utm_source=yandex", referrer="https://ya.ru/",
        utm_source="yandex", utm_medium="cpc", utm_campaign="vesna", channel="paid",
        ga_client_id="GA1.1.1.2", ym_client_id="17100000001", page_views=3,
        user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/120.0.0.0 Safari/537.36")
    factory.assignment(visit, pool, "p1@shop.example", kind="pool", at=visit.started_at,
                       expires_at=now, pool_address=pool.pool_addresses[0])
    factory.assignment(visit, token, "sales+ab12@shop.example", kind="subaddress", token="ab12")
    db.session.add(Display(account_id=account.id, visit_id=visit.id, block_id=block.id,
                           address="p1@shop.example", count=2, at=visit.started_at))
    ended = factory.visit(site, at=now - timedelta(days=1), channel="organic",
                          utm_source="google")
    factory.assignment(ended, pool, "p2@shop.example", kind="pool", at=ended.started_at,
                       expires_at=ended.started_at + timedelta(minutes=30),
                       pool_address=pool.pool_addresses[1])
    today = local_day(now, zone(account.timezone))
    for back, (peak, leased, missed) in enumerate([(2, 9, 4), (1, 3, 0)]):
        db.session.add(PoolUsage(account_id=account.id, rule_id=pool.id,
                                 day=today - timedelta(days=back), pool_size=2, peak_leases=peak,
                                 leased_visits=leased, fallback_visits=missed, updated_at=now))
    db.session.commit()

    def tracked(at, address, rule, attribution, visit=None, **fields):
        source = visit.source() if visit else {}
        return factory.email(box, at=at, recipient=address, tracked_address=address,
                             rule_id=rule.id, visit_id=visit.id if visit else None,
                             attribution=attribution, source=source,
                             channel=source.get("channel"), utm_source=source.get("utm_source"),
                             **fields)

    first = factory.email(box, at=now - timedelta(days=2), sender="ivan@example.org",
                          subject="Прайс-лист", from_name="Иван")
    repeat = factory.email(box, at=now - timedelta(days=2) + timedelta(hours=1),
                           sender="ivan@example.org", subject="Ещё вопрос", counted=False)
    held = tracked(now - timedelta(hours=2), "p1@shop.example", pool, "pool", visit,
                   sender="olga@example.org", subject="Заказ", size=2048,
                   message_id="<a1@example.org>")
    late = tracked(now - timedelta(hours=1), "p2@shop.example", pool, "pool", ended,
                   sender="petr@example.org", subject="Доставка")
    again = tracked(now - timedelta(minutes=30), "p1@shop.example", pool, "pool", visit,
                    sender="olga@example.org", subject="Ещё заказ", counted=False)
    later = factory.email(box, at=now - timedelta(minutes=20), sender="ivan@example.org",
                          subject="Снова я")
    direct = tracked(now - timedelta(minutes=10), "direct@shop.example", static, "static",
                     sender="anna@example.org")
    fallback = tracked(now - timedelta(minutes=5), "info@shop.example", pool, "fallback",
                       sender="oleg@example.org", subject="Вопрос")
    by_token = tracked(now - timedelta(minutes=4), "sales+ab12@shop.example", token,
                       "subaddress", visit, sender="vera@example.org", subject="Счёт")
    made_up = tracked(now - timedelta(minutes=3), "sales+zz99@shop.example", token,
                      "subaddress", sender="gleb@example.org", subject="Счёт")
    nobody = tracked(now - timedelta(minutes=2), "p2@shop.example", pool, "pool",
                     sender="lev@example.org", subject="Опт")
    no_sender = factory.email(box, at=now - timedelta(minutes=1), sender=None, subject="")
    # A repeat whose counted email is gone, and a mailbox where every email counts.
    orphan = factory.email(box, at=now - timedelta(minutes=50), sender="ira@example.org",
                           counted=False)
    every = factory.email(factory.mailbox(account, repeat_period_seconds=0),
                          at=now - timedelta(minutes=40), sender="ira@example.org")
    # A previous period to compare with, and more sources than the dashboard lists.
    factory.email(box, at=now - timedelta(days=9), sender="old@example.org", channel="paid",
                  utm_source="yandex", attribution="static", rule_id=static.id)
    for n in range(12):
        factory.email(box, at=now - timedelta(days=3, minutes=n), sender=f"s{n}@example.org",
                      channel="social", utm_source=f"vk{n}", attribution="pool",
                      rule_id=pool.id, tracked_address="p1@shop.example")
    emails = [first, repeat, held, late, again, later, direct, fallback, by_token, made_up,
              nobody, no_sender, orphan, every]
    return ["/", "/?period=30d", "/?period=today", "/emails", "/emails?q=channel:banana",
            "/emails?q=zzz-nothing", "/emails?tracked=yes&period=7d",
            *(f"/emails/{email.id}" for email in emails),
            f"/visits/{visit.id}", f"/visits/{ended.id}", f"/rules/{pool.id}",
            f"/rules/{static.id}"]


def test_pages_follow_accept_language(client, factory):
    user = factory.user()
    pages = admin_pages(factory, user)
    headers = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}
    assert "Вход" in client.get("/login", headers=headers).get_data(as_text=True)
    client.login(user)
    for url in pages[1:]:
        response = client.get(url, headers=headers)
        assert response.status_code == (404 if url == "/nowhere" else 200), url
        html = response.get_data(as_text=True)
        assert '<html lang="ru">' in html, url
        assert english_leftovers(html) == [], url
    # The exports' column headers and words, and the sheet's name.
    csv_text = client.get("/emails.csv", headers=headers, buffered=True).get_data(as_text=True)
    assert "Получено (Europe/Moscow)" in csv_text and english_leftovers(csv_text) == []
    xlsx = client.get("/emails.xlsx", headers=headers, buffered=True).get_data()
    workbook = load_workbook(io.BytesIO(xlsx))
    sheet = workbook.worksheets[0]
    cells = " ; ".join(str(cell.value) for row in sheet.iter_rows() for cell in row
                       if cell.value is not None)
    assert sheet.title == "Обращения" and english_leftovers(cells) == []
    client.csrf_token = client.csrf_token
    bad = client.post("/sites/new", data={"name": ""}, headers=headers).get_data(as_text=True)
    assert "Укажите название сайта." in bad and english_leftovers(bad) == []


def test_empty_reports_follow_accept_language(client, factory):
    """The dashboard's and the emails list's empty states, before any email arrived."""
    user = factory.user()
    factory.site(user.account, name="Магазин")
    client.login(user)
    for url in ("/", "/emails"):
        html = client.get(url, headers={"Accept-Language": "ru"}).get_data(as_text=True)
        assert "Обращений пока нет" in html, url
        assert english_leftovers(html) == [], url
        english = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert "No emails yet" in english, url


def test_report_pages_render_in_english(client, factory):
    """The same pages in English: every one renders, with no Russian UI text."""
    user = factory.user()
    pages = report_pages(factory, user, factory.site(user.account, name="Shop"))
    client.login(user)
    russian_ui = {(entry.string if isinstance(entry.string, str) else entry.string[0])
                  for entry in russian() if entry.id and entry.string}
    russian_ui = {text for text in russian_ui if "%(" not in text and len(text) > 3
                  and re.search("[а-яё]", text)}
    for url in pages:
        response = client.get(url, headers={"Accept-Language": "en"})
        assert response.status_code == 200, url
        text = visible_text(response.get_data(as_text=True))
        assert '<html lang="en">' in response.get_data(as_text=True), url
        assert [ui for ui in russian_ui
                if re.search(r"(?<!\w)" + re.escape(ui) + r"(?!\w)", text)] == [], url


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
