"""The admin pages added for integrations, teammates and operators render hostile text as text.

Text from outside reaches them: a webhook receiver's answer, names typed by teammates
(sites, API tokens), the activity log's object labels, and the page views the writer set
aside (every field of them came from a visitor's browser).
"""

import uuid

from tests.test_browser_reports import IMG, SCRIPT
from tests.test_browser_sites import sign_in
from tracker import ingest
from tracker.extensions import db, redis_client
from tracker.integrations import apitokens
from tracker.models import ActivityEntry, utcnow
from tracker.models.integrations import Webhook, WebhookAttempt, WebhookDelivery

HOSTILE = f"{SCRIPT} {IMG}"


def test_hostile_text_renders_as_text_on_the_admin_pages(app, page, live_server, factory, user):
    account = user.account
    webhook = Webhook(account_id=account.id, url="https://hooks.example/in", events="all")
    webhook.secret = "s" * 32
    db.session.add(webhook)
    db.session.flush()
    delivery = WebhookDelivery(account_id=account.id, webhook_id=webhook.id,
                               event_id=uuid.uuid4().hex, event="test", body="{}")
    db.session.add(delivery)
    db.session.flush()
    db.session.add(WebhookAttempt(account_id=account.id, webhook_id=webhook.id,
                                  delivery_id=delivery.id, at=utcnow(), attempt=1,
                                  status_code=500, excerpt=HOSTILE[:300]))
    db.session.add(ActivityEntry(account_id=account.id, user_id=user.id, user_email=user.email,
                                 action="created", object_type="site", object_id=1,
                                 object_label=HOSTILE[:300]))
    db.session.commit()
    apitokens.create(account.id, HOSTILE[:100], user_id=user.id)
    entry_id = b"1-1"
    fields = {b"u": HOSTILE.encode(), b"r": HOSTILE.encode()}
    ingest.set_aside(redis_client(), [(entry_id, fields)], [(entry_id, HOSTILE)])

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_server, user)
    for path in (f"/webhooks/{webhook.id}", "/settings/activity/", "/settings/api-tokens/",
                 "/ops/jobs", "/team/", f"/emails/offline-conversions?q={HOSTILE}"):
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        assert page.evaluate("window.__owned") is None, path
        assert page.locator("#injected").count() == 0, path
        scripts = page.eval_on_selector_all("script", "nodes => nodes.map(n => n.src)")
        assert all(src.startswith(live_server.url + "/static/") for src in scripts), (path, scripts)
        if not path.startswith(("/team/", "/emails/")):  # they show none of it
            assert "<script>window.__owned = 1" in page.locator("body").inner_text(), path
    assert dialogs == []
