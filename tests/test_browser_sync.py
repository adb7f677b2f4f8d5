"""In a real browser: «Sync now», the widget polls while the job is pending, then stops."""

import time

from playwright.sync_api import expect

from tests.test_browser_sites import sign_in
from tests.test_sync import box, imap_settings, mail, work  # noqa: F401


def test_sync_now_polls_until_the_sync_ends(page, live_server, app, user, box):
    box.deliver(mail(1))
    box.deliver(mail(2))
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/sync-status") else None)
    sign_in(page, live_server, user)
    page.get_by_role("link", name="Mailboxes").click()
    row = page.locator("tr", has_text=box.login)
    expect(row.locator(f"#email-count-{box.id}")).to_have_text("0")

    row.get_by_role("button", name="Sync now").click()
    widget = row.locator(".sync-widget")
    expect(widget).to_contain_text("Queued…")
    expect(row.get_by_role("button", name="Sync now")).to_be_disabled()
    with page.expect_request(lambda r: r.url.endswith("/sync-status")):
        pass  # the widget polls while the job waits for a worker

    work(app)  # a real worker runs the job meanwhile
    expect(widget).to_contain_text("Last run: 2 new emails", timeout=10_000)
    expect(row.locator(f"#email-count-{box.id}")).to_have_text("2")
    expect(row.locator(".mailbox-status")).to_contain_text("Integration works.")
    expect(row.get_by_role("button", name="Sync now")).to_be_enabled()

    # Polling has stopped: no request for the status in the next few seconds.
    count = len(polls)
    time.sleep(3)  # more than one polling interval (2 s)
    assert len(polls) == count
