"""End to end: a visit, an email delivered to Dovecot, a real sync, and the webhook it sends."""

import json

from sqlalchemy import select

from tests.test_api import hit
from tests.test_end_to_end import message
from tests.test_sync import box, imap_settings, now, work  # noqa: F401  (fixtures)
from tests.test_webhooks import Receiver, add_webhook, pending, run_workers
from tracker.extensions import db
from tracker.jobs.sync import enqueue_sync
from tracker.models import Email, WebhookDelivery


def test_a_synced_email_reaches_the_webhook_with_its_visit(app, client, factory, user, box):
    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    rule = factory.rule(user.account, blocks=[block], mode="subaddress",
                        base_address=box.login, name="Yandex Direct")
    shown = hit(client, site, visit="visit-hook-1", visitor="visitor-hook",
                url="https://shop.example/landing?utm_source=yandex&utm_medium=cpc"
                    "&utm_campaign=spring",
                r="https://yandex.ru/").json["b"][0]["t"]
    receiver = Receiver()
    try:
        webhook, receiver.secret = add_webhook(user.account, receiver.url,
                                               events="new_request")
        box.deliver(message(to=shown, subject="Нужна цена"), at=now())
        enqueue_sync(box.id, trigger="manual")
        work(app)  # the sync: it stores the email and queues its event
        db.session.expire_all()
        email = db.session.scalars(select(Email)).one()
        assert db.session.scalars(select(WebhookDelivery.email_id)).all() == [email.id]

        from redis import Redis

        redis = Redis.from_url(app.config["REDIS_URL"])
        run_workers(redis, lambda: pending() == 0)
        redis.close()
    finally:
        receiver.close()

    request, = receiver.requests
    assert request["valid"]
    body = json.loads(request["body"])
    assert body["type"] == "email.new_request" and body["webhook_id"] == webhook.id
    sent = body["email"]
    assert (sent["id"], sent["subject"], sent["status"]) == (email.id, "Нужна цена", "new")
    assert sent["recipients"] == [shown]
    assert sent["attribution"]["how"] == "subaddress"
    assert sent["attribution"]["rule"] == {"id": rule.id, "name": "Yandex Direct"}
    assert sent["attribution"]["certain"] is True
    assert sent["visit"]["id"] == email.visit_id
    assert sent["visit"]["utm_source"] == "yandex" and sent["visit"]["channel"] == "paid"
    assert sent["visit"]["landing_url"].startswith("https://shop.example/landing")
    assert sent["time"].endswith("Z")
