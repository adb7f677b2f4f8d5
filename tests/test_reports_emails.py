"""The emails report: filters, search terms, keyset pages, the detail's explanations, isolation."""

import re
from datetime import datetime, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from tracker.extensions import db
from tracker.models import utcnow
from tracker.reports import emails as report
from tracker.reports.periods import zone

ROW = re.compile(r'<tr id="email-(\d+)"')


def listed(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [int(n) for n in ROW.findall(response.get_data(as_text=True))]


@pytest.fixture
def seeded(factory, user):
    """Twelve emails of known shape, an hour apart, newest last; and another account's."""
    account = user.account
    account.timezone = "Europe/Moscow"
    db.session.commit()
    shop, blog = factory.site(account, name="Shop"), factory.site(account, name="Blog")
    ads = factory.rule(account, name="Ads", address="ads@shop.example")
    other = factory.rule(account, name="Organic", address="seo@shop.example")
    box = factory.mailbox(account)
    second = factory.mailbox(account)
    base = utcnow().replace(microsecond=0) - timedelta(hours=13)
    rows = []
    plan = [  # (sender, subject, channel, utm_source, rule, site, counted, mailbox)
        ("ivan@gmail.com", "Прайс-лист, пожалуйста", "paid", "google", ads, shop, True, box),
        ("ivan@gmail.com", "Re: price list", "paid", "google", ads, shop, False, box),
        ("anna@yandex.ru", "Need a price list", "organic", "yandex", other, blog, True, box),
        ("bob@corp.example", "Hello", None, None, None, None, True, box),
        ("eve@gmail.com", "Order 100% cotton", "paid", "yandex", ads, shop, True, second),
        ("eve@gmail.com", "Order_again", "paid", "yandex", ads, shop, False, second),
        ("max@mail.ru", "Вопрос", "social", "vk", other, blog, True, box),
        ("lee@gmail.com", "Price?", "email", "newsletter", other, None, True, box),
        ("bob@corp.example", "Hello again", None, None, None, None, False, box),
        ("kim@example.org", "price list for kim", "referral", "partner", ads, shop, True, box),
        ("tom@example.org", "Quote", "direct", None, other, shop, True, second),
        ("ann@example.org", "Спасибо", "paid", "google", ads, blog, True, box),
    ]
    for n, (sender, subject, channel, source, rule, site, counted, mailbox) in enumerate(plan):
        rows.append(factory.email(
            mailbox, at=base + timedelta(hours=n), sender=sender, subject=subject,
            channel=channel, utm_source=source, rule_id=rule.id if rule else None,
            site_id=site.id if site else None, counted=counted,
            attribution="static" if rule else None,
            tracked_address=rule.static_address if rule else None,
            source={"channel": channel, "utm_source": source or "", "utm_campaign": f"c{n % 3}"}
            if rule else None))
    stranger = factory.user()
    foreign_box = factory.mailbox(stranger.account)
    foreign = factory.email(foreign_box, at=base, sender="ivan@gmail.com", subject="price list")
    ids = [row.id for row in rows]
    return {"ids": ids, "shop": shop, "blog": blog, "ads": ads, "box": box, "second": second,
            "foreign": foreign, "rows": rows}


def newest_first(ids, *positions):
    return [ids[p] for p in sorted(positions, reverse=True)]


def test_the_list_is_newest_first_and_shows_only_the_account(logged_in, seeded):
    ids = seeded["ids"]
    assert listed(logged_in, "/emails") == list(reversed(ids))
    assert seeded["foreign"].id not in listed(logged_in, "/emails?q=price")


@pytest.mark.parametrize("query, positions", [
    ("channel=paid", (0, 1, 4, 5, 11)),
    ("channel=none", (3, 8)),
    ("utm_source=google", (0, 1, 11)),
    ("status=new", (0, 2, 3, 4, 6, 7, 9, 10, 11)),
    ("status=repeat", (1, 5, 8)),
    ("tracked=no", (3, 8)),
    ("tracked=yes&status=repeat", (1, 5)),
    ("q=price+list", (1, 2, 9)),
    ("q=%22price+list%22", (1, 2, 9)),
    ("q=from%3A%40gmail.com", (0, 1, 4, 5, 7)),
    ("q=from%3A%40gmail.com+channel%3Apaid+price", (1,)),
    ("q=100%25", (4,)),
    ("q=order_", (5,)),
    ("q=прайс", (0,)),
    ("q=status%3Arepeat+tracked%3Ano", (8,)),
    ("q=source%3Ayandex+campaign%3Ac1", (4,)),
    ("q=rule%3AAds+channel%3Apaid", (0, 1, 4, 5, 11)),
    ("q=subject%3Ahello", (3, 8)),
])
def test_filters_and_search_terms(logged_in, seeded, query, positions):
    assert listed(logged_in, f"/emails?{query}") == newest_first(seeded["ids"], *positions)


def test_filters_by_site_mailbox_and_rule(logged_in, seeded):
    ids = seeded["ids"]
    assert listed(logged_in, f"/emails?site={seeded['blog'].id}") == newest_first(ids, 2, 6, 11)
    assert listed(logged_in, f"/emails?mailbox={seeded['second'].id}") == newest_first(ids, 4, 5, 10)
    assert listed(logged_in, f"/emails?rule={seeded['ads'].id}&channel=paid") == newest_first(
        ids, 0, 1, 4, 5, 11)
    assert listed(logged_in, "/emails?q=site%3ABlog") == newest_first(ids, 2, 6, 11)


def test_an_unknown_search_value_is_named_and_ignored(logged_in, seeded):
    response = logged_in.get("/emails?q=channel%3Abanana+status%3Amaybe")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Unknown value for channel: banana" in html and "Unknown value for status: maybe" in html
    assert len(ROW.findall(html)) == 12


@pytest.mark.parametrize("query", [
    "period=banana", "date_from=2026-13-45&period=custom", "site=abc", "site=-1",
    "mailbox=99999999999999999999999", "before=zzz", "after=1.1", "before=99999999999999999999.1",
    "channel=%3Cscript%3E", "q=" + "x" * 5000, "status=%00", "q=%22unclosed",
    "period=custom&date_from=0001-01-01&date_to=9999-12-31", "date_to=9999-12-31",
])
def test_bad_filter_values_never_fail(logged_in, seeded, query):
    assert logged_in.get(f"/emails?{query}").status_code == 200


def test_another_accounts_objects_narrow_to_nothing(logged_in, seeded, factory):
    stranger = seeded["foreign"]
    assert listed(logged_in, f"/emails?mailbox={stranger.mailbox_id}") == []
    assert logged_in.get(f"/emails/{stranger.id}").status_code == 404
    assert logged_in.get(f"/emails/{2**70}").status_code == 404


def test_periods_follow_the_accounts_time_zone(app, logged_in, seeded, factory):
    box = seeded["box"]
    tz = zone("Europe/Moscow")  # UTC+3
    today = datetime.now(tz).date()
    # 22:30 UTC yesterday is 01:30 today in Moscow.
    late = datetime.combine(today - timedelta(days=1), datetime.min.time()) + timedelta(
        hours=22, minutes=30)
    early = factory.email(box, at=late, subject="after Moscow midnight")
    before = factory.email(box, at=late - timedelta(hours=2), subject="before Moscow midnight")
    shown = listed(logged_in, "/emails?period=today")
    assert early.id in shown and before.id not in shown
    assert before.id in listed(logged_in, "/emails?period=yesterday")
    day = (today - timedelta(days=1)).isoformat()
    custom = listed(logged_in, f"/emails?period=custom&date_from={day}&date_to={day}")
    assert before.id in custom and early.id not in custom


def test_keyset_pages_walk_every_row_once_and_stay_stable_while_emails_arrive(
        seeded, factory, user):
    ids = list(reversed(seeded["ids"]))
    query = report.filtered(user.account_id, report.Filters(), zone("UTC"))[0]
    first = report.page(query, size=5)
    assert [e.id for e, in first.items] == ids[:5] and first.newer is None
    # New mail arrives while the reader pages on: the next pages do not shift.
    brand_new = factory.email(seeded["box"], at=utcnow(), subject="Brand new")
    pages, before = [first], first.older
    while before:
        pages.append(report.page(query, before=before, size=5))
        before = pages[-1].older
    assert [[e.id for e, in p.items] for p in pages] == [ids[:5], ids[5:10], ids[10:]]
    back = report.page(query, after=pages[-1].newer, size=5)
    assert [e.id for e, in back.items] == ids[5:10] and back.newer is not None
    again = report.page(query, after=back.newer, size=5)
    assert [e.id for e, in again.items] == ids[:5] and again.newer is not None
    newest = report.page(query, after=again.newer, size=5)
    assert [e.id for e, in newest.items] == [brand_new.id] and newest.newer is None


def test_links_carry_the_filters_and_cursors(logged_in, seeded, factory):
    box = seeded["box"]
    start = utcnow() - timedelta(days=3)
    for n in range(60):
        factory.email(box, at=start + timedelta(minutes=n), sender=f"s{n}@x.example",
                      subject=f"bulk {n}", commit=n == 59)
    html = logged_in.get("/emails?q=bulk&status=new").get_data(as_text=True)
    older = re.search(r'href="(/emails\?[^"]*before=[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "q=bulk" in older and "status=new" in older
    second = listed(logged_in, older)
    assert len(second) == 10 and len(ROW.findall(html)) == 50
    assert 'rel="prev"' in logged_in.get(older).get_data(as_text=True)


def test_empty_account_says_what_to_set_up(logged_in):
    html = logged_in.get("/emails").get_data(as_text=True)
    assert "No emails yet" in html
    assert "/sites/new" in html and "/mailboxes/new" in html and "flask --app wsgi demo" in html


def test_htmx_gets_the_table_alone(logged_in, seeded):
    response = logged_in.get("/emails?channel=paid", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html and 'id="email-' in html
    assert "HX-Request" in response.headers.get("Vary", "")


# ---------------------------------------------------------------- the detail

def test_detail_explains_a_repeat_and_a_new_request(logged_in, factory, user):
    box = factory.mailbox(user.account)  # repeat period: 1 day
    at = utcnow() - timedelta(days=2)
    first = factory.email(box, at=at, sender="c@x.example", subject="one")
    repeat = factory.email(box, at=at + timedelta(hours=3), sender="c@x.example", counted=False)
    again = factory.email(box, at=at + timedelta(days=1, hours=1), sender="c@x.example")
    html = logged_in.get(f"/emails/{repeat.id}").get_data(as_text=True)
    assert "arrived 3 hours earlier; the repeat period is 1 day, so this one is a repeat" in html
    assert f"/emails/{first.id}" in html
    html = logged_in.get(f"/emails/{again.id}").get_data(as_text=True)
    assert "arrived 1 day earlier" in html and "counts as a new request" in html
    html = logged_in.get(f"/emails/{first.id}").get_data(as_text=True)
    assert "This is the first email from c@x.example to info@shop.example" in html


def test_detail_names_the_header_of_each_recipient(logged_in, factory, user):
    box = factory.mailbox(user.account)
    email = factory.email(box, recipient="a@shop.example", recipient_fields=[
        ["Delivered-To", "a@shop.example"], ["To", "b@shop.example"], ["Cc", "c@shop.example"]])
    html = logged_in.get(f"/emails/{email.id}").get_data(as_text=True)
    for header, address in (("Delivered-To", "a"), ("To", "b"), ("Cc", "c")):
        assert re.search(rf"{address}@shop.example</code> <small class=\"muted\">{header}", html)
    assert "None of the recipients is an address that your rules show" in html


def test_detail_says_when_a_pool_lease_had_ended(logged_in, factory, user):
    account = user.account
    site = factory.site(account)
    rule = factory.rule(account, name="Pool", mode="pool", pool=["p1@shop.example"],
                        fallback_address="info@shop.example")
    visit = factory.visit(site, at=utcnow() - timedelta(hours=5), utm_source="google",
                          channel="paid")
    factory.assignment(visit, rule, "p1@shop.example", kind="pool", at=visit.started_at,
                       expires_at=visit.started_at + timedelta(minutes=30),
                       pool_address=rule.pool_addresses[0])
    box = factory.mailbox(account)
    email = factory.email(box, at=visit.started_at + timedelta(hours=2, minutes=30),
                          recipient="p1@shop.example", rule_id=rule.id, visit_id=visit.id,
                          attribution="pool", tracked_address="p1@shop.example",
                          source=visit.source(), channel="paid")
    html = logged_in.get(f"/emails/{email.id}").get_data(as_text=True)
    assert "Weak evidence" in html and "lease had ended 2 hours before" in html
    assert f"/visits/{visit.id}" in html


def test_dates_typed_without_choosing_custom_dates_still_narrow(logged_in, seeded):
    from werkzeug.datastructures import MultiDict

    filters = report.Filters.from_args(MultiDict({"date_from": "2000-01-01"}))
    assert (filters.period, filters.args()) == ("custom", {"period": "custom",
                                                           "date_from": "2000-01-01"})
    assert listed(logged_in, "/emails?date_from=2000-01-01&date_to=2000-01-02") == []
    assert listed(logged_in, "/emails?period=7d&date_from=2000-01-01") == list(
        reversed(seeded["ids"]))


def test_search_text_is_case_folded_and_bounded():
    from tracker.models.emails import SEARCH_TEXT_BYTES, search_text

    assert search_text("Прайс-ЛИСТ", "Straße", "A@X.EXAMPLE") == "прайс-лист\nstrasse\na@x.example"
    long = search_text("😀" * 400, "Имя", "a@x.example")
    assert len(long.encode()) <= SEARCH_TEXT_BYTES and long == "😀" * (SEARCH_TEXT_BYTES // 4)


def test_uncertain_attributions_are_marked_and_found(logged_in, seeded):
    rows, ids = seeded["rows"], seeded["ids"]
    rows[2].uncertain = "lease_ended"
    rows[9].uncertain = "lease_ended"
    db.session.commit()
    both = newest_first(ids, 2, 9)
    assert listed(logged_in, "/emails?uncertain=yes") == both
    assert listed(logged_in, "/emails?q=uncertain:yes") == both
    assert len(listed(logged_in, "/emails?q=uncertain:no")) == 8  # tracked, not marked
    assert len(listed(logged_in, "/emails?uncertain=maybe")) == 12  # ignored, never an error
    html = logged_in.get("/emails").get_data(as_text=True)
    assert html.count(">uncertain</span>") == 2
    assert 'name="uncertain"' in html
    page = logged_in.get("/emails?uncertain=yes").get_data(as_text=True)
    assert '<option value="yes" selected>' in page
    assert report.Filters.from_args(MultiDict({"uncertain": "yes"})).args() == {"uncertain": "yes"}
    assert report.Filters.from_args(MultiDict({"uncertain": "no"})).args() == {}


def test_detail_reads_the_stored_uncertain_mark(logged_in, factory, user):
    account = user.account
    site = factory.site(account)
    rule = factory.rule(account, name="Pool", mode="pool", pool=["p1@shop.example"])
    visit = factory.visit(site, at=utcnow() - timedelta(hours=5))
    box = factory.mailbox(account)
    # No lease row left to judge by: the stored mark alone says the lease had ended.
    email = factory.email(box, at=visit.started_at + timedelta(hours=2),
                          recipient="p1@shop.example", rule_id=rule.id, visit_id=visit.id,
                          attribution="pool", tracked_address="p1@shop.example",
                          source=visit.source(), uncertain="lease_ended")
    html = logged_in.get(f"/emails/{email.id}").get_data(as_text=True)
    assert ">uncertain</span>" in html and "Attribution marked uncertain" in html
    assert "this visit's lease had ended. It is the last visit" in html


def test_detail_says_a_thread_reply_is_a_repeat_and_where_its_source_comes_from(
        logged_in, factory, user):
    from tracker.attribution import attribute_emails

    account = user.account
    site = factory.site(account)
    rule = factory.rule(account, name="Tokens", mode="subaddress",
                        base_address="info@shop.example")
    visit = factory.visit(site, at=utcnow() - timedelta(days=3), utm_source="google",
                          channel="paid")
    factory.assignment(visit, rule, "info+t1@shop.example", kind="subaddress",
                       at=visit.started_at, token="t1")
    box = factory.mailbox(account)
    first = factory.email(box, at=visit.started_at + timedelta(hours=1), sender="c@x.example",
                          recipient="info+t1@shop.example", message_id="first@x.example",
                          subject="<b>Price</b>")
    reply = factory.email(box, at=utcnow() - timedelta(hours=1), sender="c@x.example",
                          recipient="info@shop.example", in_reply_to="first@x.example",
                          subject="Re: price")
    attribute_emails([first.id, reply.id])
    db.session.commit()
    db.session.refresh(reply)
    assert (reply.thread_of, reply.visit_id, reply.counted) == (first.id, visit.id, False)
    html = logged_in.get(f"/emails/{reply.id}").get_data(as_text=True)
    assert "This is a reply in the thread of" in html
    assert "so it is a repeat, not a new request" in html
    assert "it is a reply in the thread of" in html and "takes that email's source" in html
    assert html.count(f'href="/emails/{first.id}"') >= 2
    assert "&lt;b&gt;Price&lt;/b&gt;" in html and "<b>Price</b>" not in html
    assert f"/visits/{visit.id}" in html
    # The first email's page says nothing of threads.
    html = logged_in.get(f"/emails/{first.id}").get_data(as_text=True)
    assert "reply in the thread" not in html
    # The same page in Russian.
    user.locale = "ru"
    db.session.commit()
    html = logged_in.get(f"/emails/{reply.id}").get_data(as_text=True)
    assert "Это ответ в переписке по обращению" in html


def test_detail_says_a_second_copy_of_a_message_counts_once(logged_in, factory, user):
    from tracker.counting import recount_pairs

    account = user.account
    one, two = factory.mailbox(account), factory.mailbox(account)
    at = utcnow() - timedelta(hours=2)
    pair = [("c@x.example", "info@shop.example")]
    second = factory.email(two, at=at, sender="c@x.example", message_id="same@x.example")
    recount_pairs(two.id, two.repeat_period_seconds, pair)
    first = factory.email(one, at=at, sender="c@x.example", message_id="same@x.example")
    recount_pairs(one.id, one.repeat_period_seconds, pair)
    db.session.commit()
    db.session.refresh(second)
    assert (first.counted, second.counted) == (True, False)
    html = logged_in.get(f"/emails/{second.id}").get_data(as_text=True)
    assert "it counts only once, so this copy is a repeat" in html
    assert f'href="/emails/{first.id}"' in html
    html = logged_in.get(f"/emails/{first.id}").get_data(as_text=True)
    assert "this copy is a repeat" not in html


def test_suspected_spam_is_marked_explained_and_found(logged_in, factory, user, seeded):
    rows, ids = seeded["rows"], seeded["ids"]
    rows[4].uncertain, rows[4].counted = "bot_visit", False
    rows[7].uncertain = "lease_ended"
    db.session.commit()
    assert listed(logged_in, "/emails?uncertain=spam") == newest_first(ids, 4)
    assert listed(logged_in, "/emails?q=uncertain:spam") == newest_first(ids, 4)
    assert listed(logged_in, "/emails?uncertain=yes") == newest_first(ids, 4, 7)
    html = logged_in.get("/emails").get_data(as_text=True)
    assert html.count(">suspected spam</span>") == 1 and html.count(">uncertain</span>") == 1
    detail = logged_in.get(f"/emails/{rows[4].id}").get_data(as_text=True)
    assert "Suspected spam" in detail and "recognised as a bot" in detail
    assert "never counts as a new request" in detail
    export = logged_in.get("/emails.csv?uncertain=spam", buffered=True).get_data(as_text=True)
    assert "(suspected spam)" in export and export.count("\n") == 2
