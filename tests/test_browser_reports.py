"""Hostile text from visits and mail, delivered for real and synced, renders as text in a browser."""

import re
import uuid
from urllib.parse import quote

from playwright.sync_api import expect
from sqlalchemy import select

from tests.test_api import hit
from tests.test_browser_sites import sign_in
from tests.test_sync import box, imap_settings, now, work  # noqa: F401  (fixtures)
from tracker.extensions import db
from tracker.jobs.sync import enqueue_sync
from tracker.models import Email, Visit

SCRIPT = "<script>window.__owned = 1; alert('x')</script>"
IMG = '"><img src=x id=injected onerror="window.__owned = 2; alert(2)">'
BIDI = "\u202eexe.tnemyap\u202c"


def hostile_mail(to):
    # Raw 8-bit UTF-8 headers, as many real mailers send them.
    lines = [
        f'From: "{IMG}" <evil@example.org>',
        f"To: {to}",
        f"Subject: {SCRIPT} {BIDI} price",
        f"Message-ID: <{uuid.uuid4().hex}@example.org>",
    ]
    return ("\r\n".join(lines) + "\r\n\r\nHello\r\n").encode()


def test_hostile_text_renders_as_text_on_every_report_page(
        app, client, page, live_server, factory, user, box):
    site = factory.site(user.account, name="Shop", domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    factory.rule(user.account, name="Personal", blocks=[block], mode="subaddress",
                 base_address=box.login)
    landing = ("https://shop.example/?utm_source=" + quote(SCRIPT) + "&utm_campaign="
               + quote(IMG) + "&utm_medium=" + quote(BIDI))
    answer = hit(client, site, visit="visit-evil-01", visitor="visitor-evil-01", url=landing,
                 r="https://evil.example/" + quote(IMG)).json
    shown = answer["b"][0]["t"]
    box.deliver(hostile_mail(shown), at=now())
    box.deliver(hostile_mail(box.login), at=now())
    enqueue_sync(box.id, trigger="manual")
    work(app)
    db.session.expire_all()
    tracked = db.session.scalar(select(Email).where(Email.tracked_address == shown))
    visit = db.session.scalar(select(Visit))
    assert tracked is not None and tracked.visit_id == visit.id

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_server, user)
    for path in ("/", "/emails", f"/emails?q={quote('price')}", f"/emails/{tracked.id}",
                 f"/visits/{visit.id}", "/emails?channel=referral"):
        page.goto(live_server.url + path)
        assert page.evaluate("window.__owned") is None, path
        assert page.locator("#injected").count() == 0, path
        scripts = page.eval_on_selector_all("script", "nodes => nodes.map(n => n.src)")
        assert all(src.startswith(live_server.url + "/static/") for src in scripts), (path, scripts)
        text = page.locator("body").inner_text()
        assert "\u202e" not in text and "\u202c" not in text, path
    page.goto(f"{live_server.url}/emails/{tracked.id}")
    body = page.locator("body").inner_text()
    assert "<script>window.__owned = 1" in body  # shown as the text it is
    assert "exe.tnemyap" in body
    page.goto(f"{live_server.url}/visits/{visit.id}")
    assert "<script>window.__owned = 1" in page.locator("body").inner_text()
    assert dialogs == []


def rows(page):
    return page.locator("table.emails tbody tr td.subject")


def test_filters_and_pages_work_with_and_without_javascript(browser, live_server, factory, user):
    from datetime import timedelta

    from tracker.models import utcnow

    box = factory.mailbox(user.account)
    start = utcnow() - timedelta(days=2)
    for n in range(55):
        factory.email(box, at=start + timedelta(minutes=n), subject=f"Paid {n:02d}",
                      channel="paid", attribution="static", commit=False)
    factory.email(box, at=start, subject="Organic one", channel="organic", attribution="static")
    for javascript in (True, False):
        context = browser.new_context(locale="en-US", java_script_enabled=javascript)
        page = context.new_page()
        try:
            sign_in(page, live_server, user)
            page.goto(f"{live_server.url}/emails")
            page.get_by_label("Channel").select_option("organic")
            if not javascript:
                page.get_by_role("button", name="Search").click()
            expect(page).to_have_url(re.compile(r"channel=organic"))
            expect(rows(page)).to_have_text(["Organic one"])
            page.get_by_label("Channel").select_option("paid")
            if not javascript:
                page.get_by_role("button", name="Search").click()
            expect(rows(page).first).to_have_text("Paid 54")
            expect(rows(page)).to_have_count(50)
            page.get_by_role("link", name="Older →").click()
            expect(page).to_have_url(re.compile(r"channel=paid.*before=|before=.*channel=paid"))
            expect(rows(page)).to_have_text([f"Paid {n:02d}" for n in range(4, -1, -1)])
            page.reload()  # the whole state is in the URL
            expect(rows(page)).to_have_count(5)
        finally:
            context.close()
