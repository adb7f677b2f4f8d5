"""The visit detail at /visits/<id>: source, device (ua-parser), addresses given and
displayed, its emails; hostile text escaped and invisible characters removed;
another account's visits and emails never shown."""

from datetime import datetime

import pytest

from tracker.extensions import db
from tracker.models import Display
from tracker.reports.text import visible

ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36")
IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
INVISIBLE = ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
             "\u2069", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\ufeff", "\u00ad",
             "\u2060", "\x00", "\x07", "\x1b", "\x7f", "\x9b", "\U000e0041", "\u3164")


def display(visit, block, address, count=1, at=None):
    row = Display(account_id=visit.account_id, visit_id=visit.id, block_id=block.id,
                  address=address, count=count, at=at or visit.started_at)
    db.session.add(row)
    db.session.commit()
    return row


@pytest.fixture
def shop(factory, user):
    """A site with a block, a static rule and a pool rule in the user's account."""
    account = user.account
    site = factory.site(account, name="Shop", domains=["shop.example"])
    block = factory.block(account, name="Footer contacts", sites=[site])
    static = factory.rule(account, name="Google Ads", blocks=[block], address="ads@shop.example")
    pool = factory.rule(account, name="Pool rule", blocks=[block], mode="pool",
                        pool=["p1@shop.example", "p2@shop.example"],
                        fallback_address="main@shop.example")
    mailbox = factory.mailbox(account)
    return site, block, static, pool, mailbox


def test_visit_page_shows_its_source_device_addresses_and_emails(logged_in, user, factory, shop):
    site, block, static, pool, mailbox = shop
    user.account.timezone = "Europe/Moscow"
    db.session.commit()
    visit = factory.visit(
        site, at=datetime(2024, 3, 10, 21, 30), last_seen_at=datetime(2024, 3, 10, 21, 47),
        landing_url="https://shop.example/catalog/very/long/path?utm_source=google&utm_medium=cpc",
        referrer="https://www.google.com/", utm_source="google", utm_medium="cpc",
        utm_campaign="spring-sale", utm_content="banner-7", utm_term="buy flowers",
        channel="paid", ga_client_id="GA1.1.123456.789", ym_client_id="1710000000123456",
        user_agent=ANDROID_CHROME, page_views=4)
    factory.assignment(visit, static, "ads@shop.example")
    lease = factory.assignment(visit, pool, "p2@shop.example", pool_address=pool.pool_addresses[1],
                               expires_at=datetime(2024, 3, 10, 22, 17))
    display(visit, block, "p2@shop.example", count=3, at=datetime(2024, 3, 10, 21, 31))
    new = factory.email(mailbox, at=datetime(2024, 3, 10, 22, 0), sender="anna@example.org",
                        subject="Price list, please", visit_id=visit.id, rule_id=pool.id,
                        from_name="Anna", counted=True)
    repeat = factory.email(mailbox, at=datetime(2024, 3, 11, 8, 0), sender="anna@example.org",
                           subject="Re: Price list", visit_id=visit.id, counted=False)
    unrelated = factory.email(mailbox, subject="Somebody else entirely")

    response = logged_in.get(f"/visits/{visit.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # The device, browser and OS as ua-parser names them.
    assert "Chrome Mobile 120" in html
    assert "Android 13" in html
    assert "Samsung SM-S911B" in html
    # Source fields, the channel label, ids.
    for text in ("Shop", "https://shop.example/catalog/very/long/path?utm_source=google&amp;"
                 "utm_medium=cpc", "https://www.google.com/", "spring-sale", "banner-7",
                 "buy flowers", "Paid ads", "GA1.1.123456.789", "1710000000123456"):
        assert text in html, text
    assert 'class="break-url"' in html
    # Times in the account's zone (UTC+3): started 00:30 on 11 March, last seen 00:47.
    assert "Mar 11, 2024, 12:30:00" in html
    assert "Mar 11, 2024, 12:47:00" in html
    # Addresses given, with links to their rules, kind and the lease's end.
    assert f'href="/rules/{static.id}"' in html and "Google Ads" in html
    assert f'href="/rules/{pool.id}"' in html and "Pool rule" in html
    assert "ads@shop.example" in html and "p2@shop.example" in html
    assert "Pool of addresses" in html and "Static" in html
    assert lease.expires_at == datetime(2024, 3, 10, 22, 17)
    assert "3/11/24, 1:17" in html
    # What the script displayed.
    assert "Footer contacts" in html
    # Its emails only, newest first, each linking to its detail.
    assert f'href="/emails/{new.id}"' in html and f'href="/emails/{repeat.id}"' in html
    assert html.index("Re: Price list") < html.index("Price list, please")
    assert "Somebody else entirely" not in html and f"/emails/{unrelated.id}" not in html
    assert "Anna" in html and "anna@example.org" in html
    assert "1 new request" in html and "1 repeat" in html
    assert "4 page views" in html


def test_other_devices_and_an_empty_visit(logged_in, factory, shop):
    site = shop[0]
    phone = factory.visit(site, user_agent=IPHONE_SAFARI)
    html = logged_in.get(f"/visits/{phone.id}").get_data(as_text=True)
    assert "Mobile Safari 17" in html and "iOS 17.1" in html and "iPhone" in html
    bare = factory.visit(site, user_agent="", is_bot=True)
    response = logged_in.get(f"/visits/{bare.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not recognised" in html
    assert "bots are never given pool addresses" in html
    assert "No tracked address was given to this visit" in html
    assert "No email has been attributed to this visit yet." in html
    crawler = factory.visit(site, user_agent="Googlebot/2.1 (+http://www.google.com/bot.html)")
    html = logged_in.get(f"/visits/{crawler.id}").get_data(as_text=True)
    assert "Googlebot 2" in html and "looks like a crawler" in html


def test_hostile_text_is_escaped_and_invisible_characters_removed(logged_in, factory, shop,
                                                                  backend):
    site, block, static, pool, mailbox = shop
    nul = "\x00" if backend == "sqlite" else ""  # PostgreSQL cannot store one at all
    script = "<script>alert(1)</script>"
    img = '"><img src=x onerror=alert(2)>'
    visit = factory.visit(
        site, landing_url=f"https://shop.example/?q={img}", referrer="javascript:alert(3)//",
        utm_source="goo\u202egle", utm_medium="c\u200bp\u2066c\u2069", utm_campaign=script,
        utm_content=img, utm_term=f"\ufeffterm{nul}\x1b[31m", ga_client_id=f"GA{img}",
        ym_client_id="\u2067123", user_agent=f"Mozilla/5.0 {script}", visitor=f"v{img}")
    factory.assignment(visit, static, f"ads{img}@shop.example")
    display(visit, block, f"{script}@shop.example")
    factory.email(mailbox, visit_id=visit.id, subject=f"Hi {script} \u202eevil\u202c {img}",
                  from_name=f"Eve {img}", sender="eve@example.org")
    html = logged_in.get(f"/visits/{visit.id}").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "<img src=x" not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    # A javascript: referrer is shown as text, never as a link.
    assert 'href="javascript:' not in html and "javascript:alert(3)//" in html
    # The landing page is an http(s) link, its text escaped inside the attribute too.
    assert 'href="https://shop.example/?q=&#34;&gt;&lt;img' in html
    for char in INVISIBLE:
        assert char not in html, repr(char)
    assert "google" in html and "cpc" in html and "term" in html and "Hi" in html


def test_another_accounts_visit_is_not_found(logged_in, factory, user, shop):
    stranger = factory.account()
    their_site = factory.site(stranger)
    their_visit = factory.visit(their_site, utm_campaign="their-campaign")
    assert logged_in.get(f"/visits/{their_visit.id}").status_code == 404
    assert logged_in.get("/visits/0").status_code == 404
    assert logged_in.get(f"/visits/{'9' * 30}").status_code == 404
    # Rows of another account that point at our visit (ids mixed up) are not shown either.
    site, block, static, pool, mailbox = shop
    ours = factory.visit(site)
    their_mailbox = factory.mailbox(stranger)
    factory.email(their_mailbox, subject="Their secret email", visit_id=ours.id)
    their_rule = factory.rule(stranger, name="Their rule", blocks=[])
    factory.assignment(their_visit, their_rule, "their@shop.example")
    mixed = factory.assignment(their_visit, their_rule, "mixed@shop.example")
    mixed.visit_id = ours.id
    db.session.add(Display(account_id=stranger.id, visit_id=ours.id, block_id=block.id,
                           address="theirs-shown@shop.example"))
    db.session.commit()
    mine = factory.email(mailbox, subject="Our own email", visit_id=ours.id)
    html = logged_in.get(f"/visits/{ours.id}").get_data(as_text=True)
    assert "Our own email" in html and f"/emails/{mine.id}" in html
    for text in ("Their secret email", "mixed@shop.example", "Their rule",
                 "theirs-shown@shop.example"):
        assert text not in html, text


def test_visit_page_requires_login(client, factory):
    account = factory.account()
    visit = factory.visit(factory.site(account))
    response = client.get(f"/visits/{visit.id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("char", INVISIBLE)
def test_visible_removes_invisible_and_bidi_characters(char):
    assert visible(f"a{char}b") == "ab"


def test_visible_keeps_text_and_turns_line_breaks_into_spaces():
    assert visible("Привет, мир! 👋🏽 é ü 中文 a\u00a0b") == "Привет, мир! 👋🏽 é ü 中文 a\u00a0b"
    assert visible("one\ntwo\tthree\r\nfour\u2028five") == "one two three  four five"
    assert visible(None) == "" and visible(42) == "42"
