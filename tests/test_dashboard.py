"""The dashboard: counts against the previous period, local days, links, set-up, escaping."""

import html
import re
from dataclasses import fields, is_dataclass
from datetime import date, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from tracker.extensions import db
from tracker.models import utcnow
from tracker.reports import charts
from tracker.reports import dashboard as dash
from tracker.reports.emails import Filters, filtered
from tracker.reports.periods import zone

WEEK = "/?period=custom&date_from=2025-03-10&date_to=2025-03-16"
HOSTILE = "<script>alert(1)</script>"


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:3000]
    return response.get_data(as_text=True)


def element(text, element_id, tag="tr"):
    """The HTML of the element with that id (rows, cards...)."""
    found = re.search(rf'<{tag}[^>]*id="{re.escape(element_id)}"[^>]*>(.*?)</{tag}>', text, re.S)
    assert found, f"no #{element_id}"
    return found.group(1)


def links(fragment):
    """[(query args, number)] of the links in an HTML fragment."""
    return [(dict(parse_qsl(urlsplit(html.unescape(href)).query)), int(number.replace(",", "")))
            for href, number in re.findall(r'<a href="([^"]+)">([\d,]+)</a>', fragment)]


def context(app, user, args, now=None):
    """dashboard_context for the user's account, as the page computes it."""
    filters = Filters.from_args(MultiDict(parse_qsl(urlsplit(args).query)))
    with app.test_request_context(args):
        return dash.dashboard_context(user.account, filters, zone(user.account.timezone), now)


def emails_behind(app, user, url):
    """How many emails the emails list shows for a dashboard link."""
    parts = urlsplit(url)
    assert parts.path == "/emails"
    filters = Filters.from_args(MultiDict(parse_qsl(parts.query)))
    query, invalid = filtered(user.account_id, filters, zone(user.account.timezone))
    assert not invalid
    return db.session.scalar(query.with_only_columns(func.count()).order_by(None))


def all_figures(value):
    """Every Figure anywhere in the dashboard's context."""
    if isinstance(value, dash.Figure):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from all_figures(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from all_figures(item)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from all_figures(getattr(value, f.name))


@pytest.fixture
def seeded(factory, user):
    """A known week (10-16 March 2025) and the week before it, plus another account's emails."""
    account = user.account
    box = factory.mailbox(account)
    shop = factory.site(account, name="Shop")

    def email(at, channel=None, source=None, counted=True, tracked=True, site=shop):
        return factory.email(box, at=datetime.fromisoformat(at), counted=counted,
                             channel=channel, utm_source=source,
                             attribution="static" if tracked else None,
                             site_id=site.id if site and tracked else None)

    # This week: 8 new requests (2 not tracked), 3 repeats.
    email("2025-03-10 10:00", "paid", "google")
    email("2025-03-11 10:00", "paid", "google")
    email("2025-03-11 11:00", "paid", "google")
    email("2025-03-12 09:00", "paid", "yandex")
    email("2025-03-12 12:00", "organic")
    email("2025-03-13 08:00", "paid", "google", counted=False)
    email("2025-03-13 09:00", "paid", "google", counted=False)
    email("2025-03-14 10:00", tracked=False)
    email("2025-03-14 11:00", tracked=False)
    email("2025-03-14 12:00", tracked=False, counted=False)
    email("2025-03-16 23:59:59", tracked=True)  # tracked, but its source names no channel
    # The week before: 4 new requests (1 not tracked), 1 repeat.
    email("2025-03-05 10:00", "paid", "google")
    email("2025-03-06 10:00", "social", "vk")
    email("2025-03-03 00:00", "social", "vk")
    email("2025-03-07 10:00", tracked=False)
    email("2025-03-08 10:00", "organic", counted=False)
    # Outside both weeks.
    email("2025-03-02 23:59:59", "paid", "google")
    email("2025-03-17 00:00", "paid", "google")
    # Another account, same days and channels.
    stranger = factory.user()
    foreign_box = factory.mailbox(stranger.account)
    foreign_site = factory.site(stranger.account, name="Foreign")
    for n in range(5):
        factory.email(foreign_box, at=datetime(2025, 3, 11, 10, n), channel="paid",
                      utm_source="google", attribution="static", site_id=foreign_site.id)
    return {"box": box, "shop": shop, "foreign_site": foreign_site}


# ------------------------------------------------------------------ figures

def test_counts_by_channel_and_source_against_the_previous_period(app, user, seeded):
    ctx = context(app, user, WEEK)
    summary = ctx["summary"]
    assert (summary["new"].current.count, summary["new"].previous.count) == (8, 4)
    assert summary["new"].change == 1.0
    assert (summary["untracked"].current.count, summary["untracked"].previous.count) == (2, 1)
    assert (summary["repeats"].current.count, summary["repeats"].previous.count) == (3, 1)

    channels = {c.key: (c.current.count, c.previous.count, c.change) for c in ctx["by_channel"]}
    assert channels == {
        "paid": (4, 1, 3.0),
        "organic": (1, 0, "new"),
        "social": (0, 2, -1.0),
        "email": (0, 0, None),
        "referral": (0, 0, None),
        "direct": (0, 0, None),
        "none": (1, 0, "new"),
        "untracked": (2, 1, 1.0),
    }
    sources = [(s.key, s.current.count, s.previous.count) for s in ctx["sources"]["rows"]]
    assert sources == [("google", 3, 1), ("yandex", 1, 0), ("vk", 0, 2)]
    assert ctx["sources"]["other"] is None
    assert ctx["period"].first == date(2025, 3, 10) and ctx["previous"].first == date(2025, 3, 3)


def test_the_page_shows_the_figures_with_their_change(logged_in, seeded):
    text = page(logged_in, WEEK)
    paid = element(text, "channel-paid")
    assert [n for _args, n in links(paid)] == [4, 1]
    assert "+300%" in paid
    assert "new" in element(text, "channel-organic")
    assert "-100%" in element(text, "channel-social")
    assert [n for _args, n in links(element(text, "summary-new", "article"))] == [8, 4]
    assert [n for _args, n in links(element(text, "summary-repeat", "article"))] == [3, 1]
    assert [n for _args, n in links(element(text, "summary-untracked", "article"))] == [2, 1]


def test_top_ten_sources_and_the_rest_as_other(app, user, factory):
    box = factory.mailbox(user.account)
    for n in range(12):
        for _ in range(12 - n):
            factory.email(box, at=datetime(2025, 3, 11, 10, n), channel="paid",
                          utm_source=f"source{n:02d}", attribution="static", commit=False)
    db.session.commit()
    ctx = context(app, user, WEEK)
    rows = ctx["sources"]["rows"]
    assert [r.key for r in rows] == [f"source{n:02d}" for n in range(10)]
    assert [r.current.count for r in rows] == list(range(12, 2, -1))
    other = ctx["sources"]["other"]
    assert (other.current.count, other.current.url) == (2 + 1, None)
    assert "2 other sources" in page_for(app, user, WEEK)


def page_for(app, user, url):
    client = app.test_client()
    client.login(user)
    return page(client, url)


def test_another_accounts_emails_are_never_counted(app, user, seeded, logged_in):
    ctx = context(app, user, WEEK)
    assert ctx["summary"]["new"].current.count == 8
    assert [s.key for s in ctx["sources"]["rows"]].count("google") == 1
    # The other account's site, given as the filter, narrows to nothing.
    ctx = context(app, user, WEEK + f"&site={seeded['foreign_site'].id}")
    assert ctx["summary"]["new"].current.count == 0
    assert ctx["summary"]["repeats"].current.count == 0
    text = page(logged_in, WEEK)
    assert "Foreign" not in text


def test_the_site_filter_narrows_and_links_keep_it(app, user, seeded, factory, logged_in):
    blog = factory.site(user.account, name="Blog")
    factory.email(seeded["box"], at=datetime(2025, 3, 11, 9), channel="paid",
                  utm_source="google", attribution="static", site_id=blog.id)
    assert context(app, user, WEEK)["summary"]["new"].current.count == 9
    ctx = context(app, user, WEEK + f"&site={blog.id}")
    assert ctx["summary"]["new"].current.count == 1
    assert ctx["summary"]["new"].previous.count == 0
    text = page(logged_in, WEEK + f"&site={blog.id}")
    found = links(element(text, "channel-paid"))
    assert found == [({"period": "custom", "date_from": "2025-03-10", "date_to": "2025-03-16",
                       "site": str(blog.id), "channel": "paid", "status": "new"}, 1)]
    assert f'<option value="{blog.id}" selected>Blog</option>' in text


# ------------------------------------------------------------------ links

def test_links_carry_the_right_filters(logged_in, seeded):
    text = page(logged_in, WEEK)
    week = {"period": "custom", "date_from": "2025-03-10", "date_to": "2025-03-16"}
    before = {"period": "custom", "date_from": "2025-03-03", "date_to": "2025-03-09"}
    assert links(element(text, "channel-paid")) == [
        ({**week, "channel": "paid", "status": "new"}, 4),
        ({**before, "channel": "paid", "status": "new"}, 1),
    ]
    assert links(element(text, "channel-none")) == [
        ({**week, "channel": "none", "tracked": "yes", "status": "new"}, 1),
    ]
    assert links(element(text, "channel-untracked")) == [
        ({**week, "tracked": "no", "status": "new"}, 2),
        ({**before, "tracked": "no", "status": "new"}, 1),
    ]
    assert links(element(text, "summary-repeat", "article")) == [
        ({**week, "status": "repeat"}, 3), ({**before, "status": "repeat"}, 1),
    ]
    # A day of the chart's table: that day only.
    day = links(element(text, "day-2025-03-11"))
    assert day == [
        ({"period": "custom", "date_from": "2025-03-11", "date_to": "2025-03-11",
          "channel": "paid", "status": "new"}, 2),
        ({"period": "custom", "date_from": "2025-03-11", "date_to": "2025-03-11",
          "status": "new"}, 2),
    ]
    google = re.search(r"<tr>\s*<th[^>]*>google</th>(.*?)</tr>", text, re.S).group(1)
    assert links(google) == [({**week, "utm_source": "google", "status": "new"}, 3),
                             ({**before, "utm_source": "google", "status": "new"}, 1)]


def test_every_number_links_to_exactly_its_rows(app, user, seeded):
    """Each figure's link, read back by the emails list's own query, finds that many rows."""
    ctx = context(app, user, WEEK + f"&site={seeded['shop'].id}")
    ctx_all = context(app, user, WEEK)
    checked = 0
    for figures in (ctx, ctx_all):
        for figure in all_figures({k: figures[k] for k in ("summary", "by_channel", "sources",
                                                            "table")}):
            if figure.url is None:
                assert figure.count == 0
                continue
            assert emails_behind(app, user, figure.url) == figure.count, figure
            checked += 1
    assert checked > 40


def test_the_chart_segments_link_to_their_day_and_channel(logged_in, seeded):
    text = page(logged_in, WEEK)
    svg = re.search(r"<svg[^>]*>.*?</svg>", text, re.S).group(0)
    assert 'role="img"' in svg and "aria-label=" in svg
    segments = re.findall(r'<a href="([^"]+)" tabindex="-1"><rect class="s-(\w+)"[^>]*>'
                          r"<title>([^<]+)</title>", svg)
    assert len(segments) == 6  # paid 10th, paid 11th, paid+organic 12th, untracked 14th, none 16th
    href, series, title = segments[1]
    assert series == "paid" and "Tue, Mar 11, 2025" in title and title.endswith(": 2")
    assert dict(parse_qsl(urlsplit(html.unescape(href)).query)) == {
        "period": "custom", "date_from": "2025-03-11", "date_to": "2025-03-11",
        "channel": "paid", "status": "new"}
    # A legend, axes and a table of the same figures.
    assert 'class="dash-legend"' in text and "Paid ads" in element(text, "per-day", "table")
    assert re.search(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle">Mar 10</text>', svg)


# ------------------------------------------------------------------ local days

def per_day(ctx):
    return {row["first"]: row["total"].count for row in ctx["table"]["rows"]}


def test_days_are_local_days_of_the_account_zone(app, user, factory):
    user.account.timezone = "Asia/Kolkata"  # +05:30
    db.session.commit()
    box = factory.mailbox(user.account)
    for at in ("2025-03-09 18:29:59",   # 9 March 23:59:59 local: the previous period
               "2025-03-09 18:30",      # 10 March 00:00 local
               "2025-03-10 18:29",      # 10 March 23:59
               "2025-03-10 18:30",      # 11 March 00:00
               "2025-03-10 20:00",      # 11 March 01:30
               "2025-03-11 18:30"):     # 12 March 00:00: after the period
        factory.email(box, at=datetime.fromisoformat(at), channel="direct", attribution="static")
    ctx = context(app, user, "/?period=custom&date_from=2025-03-10&date_to=2025-03-11")
    assert per_day(ctx) == {date(2025, 3, 10): 2, date(2025, 3, 11): 2}
    assert ctx["summary"]["new"].previous.count == 1
    assert ctx["period"].start == datetime(2025, 3, 9, 18, 30)


def test_days_across_dst_changes(app, user, factory):
    user.account.timezone = "Europe/Berlin"
    db.session.commit()
    box = factory.mailbox(user.account)
    for at in ("2025-03-29 22:59",   # 29 March 23:59 CET
               "2025-03-29 23:00",   # 30 March 00:00 CET
               "2025-03-30 21:59",   # 30 March 23:59 CEST (a 23-hour day)
               "2025-03-30 22:00",   # 31 March 00:00 CEST
               "2025-10-25 21:59",   # 25 October 23:59 CEST
               "2025-10-25 22:00",   # 26 October 00:00 CEST
               "2025-10-26 22:59",   # 26 October 23:59 CET (a 25-hour day)
               "2025-10-26 23:00"):  # 27 October 00:00 CET
        factory.email(box, at=datetime.fromisoformat(at), channel="paid", attribution="static")
    spring = context(app, user, "/?period=custom&date_from=2025-03-29&date_to=2025-03-31")
    assert per_day(spring) == {date(2025, 3, 29): 1, date(2025, 3, 30): 2, date(2025, 3, 31): 1}
    autumn = context(app, user, "/?period=custom&date_from=2025-10-25&date_to=2025-10-27")
    assert per_day(autumn) == {date(2025, 10, 25): 1, date(2025, 10, 26): 2,
                               date(2025, 10, 27): 1}


def test_a_quarter_hour_zone(app, user, factory):
    user.account.timezone = "Asia/Kathmandu"  # +05:45
    db.session.commit()
    box = factory.mailbox(user.account)
    for at in ("2025-03-10 18:14:59", "2025-03-10 18:15"):
        factory.email(box, at=datetime.fromisoformat(at), channel="paid", attribution="static")
    ctx = context(app, user, "/?period=custom&date_from=2025-03-10&date_to=2025-03-11")
    assert per_day(ctx) == {date(2025, 3, 10): 1, date(2025, 3, 11): 1}


def test_the_day_table_on_the_page_uses_local_days(logged_in, user, factory):
    user.account.timezone = "Asia/Kolkata"
    db.session.commit()
    box = factory.mailbox(user.account)
    factory.email(box, at=datetime(2025, 3, 10, 20, 0), channel="paid", attribution="static")
    text = page(logged_in, "/?period=custom&date_from=2025-03-10&date_to=2025-03-11")
    assert links(element(text, "day-2025-03-10")) == []
    assert links(element(text, "day-2025-03-11"))[0] == (
        {"period": "custom", "date_from": "2025-03-11", "date_to": "2025-03-11",
         "channel": "paid", "status": "new"}, 1)


def test_long_periods_are_shown_by_week_then_by_month(app, user, factory):
    box = factory.mailbox(user.account)
    for day in range(0, 400, 3):
        factory.email(box, at=datetime(2024, 1, 1, 12) + timedelta(days=day), channel="paid",
                      attribution="static", commit=False)
    db.session.commit()
    weeks = context(app, user, "/?period=custom&date_from=2024-01-01&date_to=2024-03-31")
    assert weeks["table"]["unit"] == "week"
    assert weeks["table"]["rows"][0]["first"] == date(2024, 1, 1)  # a Monday
    assert all(row["last"] - row["first"] == timedelta(days=6)
               for row in weeks["table"]["rows"][:-1])
    assert sum(per_day(weeks).values()) == weeks["summary"]["new"].current.count == 31
    months = context(app, user, "/?period=custom&date_from=2024-01-01&date_to=2025-02-03")
    assert months["table"]["unit"] == "month"
    assert [row["first"] for row in months["table"]["rows"]][:3] == [
        date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)]
    assert months["table"]["rows"][-1]["last"] == date(2025, 2, 3)
    assert sum(per_day(months).values()) == months["summary"]["new"].current.count == 134


# ------------------------------------------------------------------ the page

def test_default_period_is_the_last_30_days(logged_in, user, factory):
    box = factory.mailbox(user.account)
    factory.email(box, at=utcnow() - timedelta(minutes=5), channel="organic",
                  attribution="static")
    factory.email(box, at=utcnow() - timedelta(days=45), channel="organic", attribution="static")
    text = page(logged_in, "/")
    assert '<button type="submit" name="period" value="30d" aria-pressed="true">' in text
    (current, now), (previous, before) = links(element(text, "channel-organic"))
    assert (current, now) == ({"period": "30d", "channel": "organic", "status": "new"}, 1)
    first, last = date.fromisoformat(previous["date_from"]), date.fromisoformat(previous["date_to"])
    assert previous["period"] == "custom" and (last - first).days == 29 and before == 1
    assert "7 days" in text and "Yesterday" in text and 'type="date" name="date_from"' in text


def test_a_plain_get_form_keeps_the_other_filters(logged_in, seeded):
    text = page(logged_in, WEEK + "&mailbox=" + str(seeded["box"].id))
    form = re.search(r'<form method="get" action="/"[^>]*>(.*?)</form>', text, re.S).group(1)
    assert f'<input type="hidden" name="mailbox" value="{seeded["box"].id}">' in form
    assert 'name="period" value="custom" aria-pressed="true"' in form
    assert 'name="date_from" value="2025-03-10"' in form
    assert 'name="site"' in form


def test_outside_text_is_escaped(logged_in, user, factory):
    box = factory.mailbox(user.account)
    site = factory.site(user.account, name="<b>Shop</b>")
    factory.email(box, at=datetime(2025, 3, 11, 10), channel="paid", utm_source=HOSTILE,
                  attribution="static", site_id=site.id)
    text = page(logged_in, WEEK)
    assert HOSTILE not in text and "<b>Shop</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;Shop&lt;/b&gt;" in text
    row = re.search(r"<tr>\s*<th[^>]*>&lt;script&gt;alert\(1\)&lt;/script&gt;</th>(.*?)</tr>",
                    text, re.S).group(1)
    assert links(row)[0][0]["utm_source"] == HOSTILE


def test_no_inline_styles_under_the_csp(logged_in, seeded):
    response = logged_in.get(WEEK)
    text = response.get_data(as_text=True)
    assert "style-src 'self'" in response.headers["Content-Security-Policy"]
    assert "style=" not in text and "<style" not in text
    assert "<script>" not in text


def test_russian_pages_name_days_in_russian(app, factory):
    user = factory.user(locale="ru")
    box = factory.mailbox(user.account)
    factory.email(box, at=datetime(2025, 3, 11, 10), channel="paid", attribution="static")
    text = page_for(app, user, WEEK)
    assert "мар." in text


def test_dates_at_the_ends_of_the_calendar_do_not_fail(logged_in, seeded):
    page(logged_in, "/?period=custom&date_from=0001-01-01&date_to=0001-01-05")
    page(logged_in, "/?period=custom&date_from=9999-12-25&date_to=9999-12-31")
    page(logged_in, "/?period=all")
    page(logged_in, "/?period=custom&date_from=2025-03-10")
    page(logged_in, "/?period=custom&date_to=2025-03-10")
    page(logged_in, "/?period=banana&site=abc&channel=<x>")


# ------------------------------------------------------------------ empty state and set-up

def test_an_empty_account_is_told_what_to_set_up(logged_in):
    text = page(logged_in, "/")
    assert "No emails yet" in text
    for path in ("/sites/new", "/mailboxes/new", "/blocks/new", "/rules/new"):
        assert f'href="{path}"' in text
    assert "flask --app wsgi demo" in text
    assert "<svg" not in text


def test_the_empty_state_crosses_off_what_is_done(logged_in, user, factory):
    factory.site(user.account)
    text = page(logged_in, "/")
    assert 'href="/sites/new"' not in text.split('class="dash-setup"')[0]
    assert 'href="/mailboxes/new"' in text
    assert "snippet not seen yet" in text


def test_the_setup_box(logged_in, user, factory, seeded):
    quiet = factory.site(user.account, name="Quiet")
    seen_at = datetime(2025, 3, 15, 9, 30)
    factory.visit(seeded["shop"], at=seen_at - timedelta(hours=2), last_seen_at=seen_at)
    factory.visit(seeded["shop"], at=seen_at - timedelta(hours=5),
                  last_seen_at=seen_at - timedelta(hours=4))
    box = seeded["box"]
    box.status, box.synced_at = "ok", datetime(2025, 3, 16, 8, 0)
    broken = factory.mailbox(user.account, active=False)
    db.session.commit()
    text = page(logged_in, WEEK)
    shop = element(text, f"setup-site-{seeded['shop'].id}", "li")
    assert f'href="/sites/{seeded["shop"].id}"' in shop
    assert "last page view" in shop and "3/15/25" in shop and "snippet not seen yet" not in shop
    assert "snippet not seen yet" in element(text, f"setup-site-{quiet.id}", "li")
    mailbox = element(text, f"setup-mailbox-{box.id}", "li")
    assert 'href="/mailboxes/"' in mailbox and "OK" in mailbox and "last sync" in mailbox
    assert "Inactive" in element(text, f"setup-mailbox-{broken.id}", "li")
    assert "Foreign" not in text


def test_last_page_view_reads_the_newest_visits(user, factory):
    site = factory.site(user.account)
    other = factory.site(user.account)
    base = datetime(2025, 3, 1)
    factory.visit(site, at=base, last_seen_at=base + timedelta(hours=6))
    factory.visit(site, at=base + timedelta(hours=1), last_seen_at=base + timedelta(hours=2))
    assert dash.last_page_views([site.id, other.id]) == {site.id: base + timedelta(hours=6)}


# ------------------------------------------------------------------ pure parts

def test_ticks_are_round_numbers_above_the_maximum():
    assert charts.ticks_for(0) == [0, 1]
    assert charts.ticks_for(3) == [0, 1, 2, 3]
    assert charts.ticks_for(7) == [0, 2, 4, 6, 8]
    assert charts.ticks_for(95) == [0, 50, 100]
    assert charts.ticks_for(1234) == [0, 500, 1000, 1500]


def test_stacked_bars_stack_from_the_bottom():
    chart = charts.stacked_bars([("a", "A"), ("b", "B")], ["paid", "direct"],
                                {"a": {"paid": 2, "direct": 2}, "b": {"direct": 1}},
                                width=200, height=130)
    assert chart.maximum == 4 and [t.value for t in chart.ticks] == [0, 1, 2, 3, 4]
    first, second = chart.bars
    assert [s.series for s in first.segments] == ["paid", "direct"]
    paid, direct = first.segments
    assert paid.y + paid.height == pytest.approx(chart.bottom)
    assert direct.y + direct.height == pytest.approx(paid.y)
    assert paid.height == pytest.approx(direct.height)
    assert first.top == pytest.approx(chart.top)
    assert second.segments[0].height == pytest.approx(paid.height / 2)
    assert all(chart.left <= bar.x and bar.x + bar.width <= chart.right for bar in chart.bars)


def test_x_labels_thin_out_on_long_periods():
    bins = [(n, str(n)) for n in range(30)]
    chart = charts.stacked_bars(bins, ["paid"], {n: {"paid": n} for n in range(30)})
    assert 5 <= len(chart.x_labels) <= charts.MAX_X_LABELS
    assert chart.x_labels[0].text == "0"


def test_bins():
    assert dash.bin_unit(1) == dash.bin_unit(62) == "day"
    assert dash.bin_unit(63) == "week" and dash.bin_unit(372) == "month"
    weeks = dash.make_bins(date(2025, 3, 5), date(2025, 3, 20), "week")
    assert weeks == [(date(2025, 3, 5), date(2025, 3, 9)), (date(2025, 3, 10), date(2025, 3, 16)),
                     (date(2025, 3, 17), date(2025, 3, 20))]
    sunday_first = dash.make_bins(date(2025, 3, 5), date(2025, 3, 12), "week", first_weekday=6)
    assert sunday_first == [(date(2025, 3, 5), date(2025, 3, 8)),
                            (date(2025, 3, 9), date(2025, 3, 12))]
    months = dash.make_bins(date(2024, 1, 31), date(2024, 3, 2), "month")
    assert months == [(date(2024, 1, 31), date(2024, 1, 31)), (date(2024, 2, 1), date(2024, 2, 29)),
                      (date(2024, 3, 1), date(2024, 3, 2))]


def test_change():
    assert dash.change_of(5, None) is None
    assert dash.change_of(0, 0) is None
    assert dash.change_of(3, 0) == "new"
    assert dash.change_of(3, 4) == -0.25
