"""The main loop: a visit sees a dynamic address, writes to it, and the email names the visit."""

import json
import uuid

from redis import Redis
from rq import Queue
from sqlalchemy import select

from tests.test_sync import box, imap_settings, now, work  # noqa: F401  (fixtures)
from tracker.extensions import db
from tracker.jobs.sync import enqueue_sync
from tracker.models import Email, Visit

ORIGIN = "https://shop.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126"


def message(to, sender="client@example.org", subject="Заявка"):
    return (f"From: Client <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\nHello\r\n").encode()


def test_a_paid_visit_writes_and_the_email_is_attributed_to_it(app, client, factory, user, box):
    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    static = factory.rule(user.account, blocks=[block], address="info@shop.example",
                          conditions=[("utm_source", "equals", "google")])
    dynamic = factory.rule(user.account, blocks=[block], mode="subaddress",
                           base_address=box.login,
                           conditions=[("utm_source", "equals", "yandex"),
                                       ("utm_medium", "equals", "cpc")])
    body = {"k": site.key, "v": "visitor-0001", "s": "visit-paid-1", "r": "https://yandex.ru/",
            "u": "https://shop.example/?utm_source=yandex&utm_medium=cpc&utm_campaign=spring"}
    answer = client.post("/api/v1/hit", data=json.dumps(body),
                         headers={"Origin": ORIGIN, "User-Agent": BROWSER}).json
    shown = answer["b"][0]["t"]
    local, domain = box.login.split("@")
    assert shown.startswith(local + "+") and shown.endswith("@" + domain)

    box.deliver(message(to=shown), at=now())
    box.deliver(message(to=box.login, sender="someone@example.org"), at=now())
    enqueue_sync(box.id, trigger="manual")
    work(app)

    db.session.expire_all()
    emails = {e.tracked_address: e for e in db.session.scalars(select(Email))}
    tracked = emails[shown]
    assert tracked.rule_id == dynamic.id and tracked.visit_id is not None
    assert tracked.attribution == "subaddress" and tracked.counted
    assert tracked.source["utm_source"] == "yandex" and tracked.source["channel"] == "paid"
    assert tracked.source["utm_campaign"] == "spring"
    untracked = emails[None]
    assert untracked.rule_id is None and untracked.visit_id is None and not untracked.tracked
    assert static.id != dynamic.id


def test_the_sync_writes_queued_page_views_before_it_attributes(app, client, factory, user, box):
    """The writer's wake-up was lost: the sync itself writes the queued visit first."""
    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    dynamic = factory.rule(user.account, blocks=[block], mode="subaddress", base_address=box.login)
    body = {"k": site.key, "v": "visitor-0002", "s": "visit-lost-1", "n": True,
            "u": "https://shop.example/?utm_source=newsletter", "r": ""}
    shown = client.post("/api/v1/hit", data=json.dumps(body),
                        headers={"Origin": ORIGIN, "User-Agent": BROWSER}).json["b"][0]["t"]
    redis = Redis.from_url(app.config["REDIS_URL"])
    Queue(app.config["RQ_QUEUE"], connection=redis).empty()  # the wake-up job is gone
    redis.close()
    assert db.session.scalar(select(Visit)) is None

    box.deliver(message(to=shown), at=now())
    enqueue_sync(box.id, trigger="manual")
    work(app)

    db.session.expire_all()
    email = db.session.scalar(select(Email))
    visit = db.session.scalar(select(Visit))
    assert (email.tracked_address, email.rule_id) == (shown, dynamic.id)
    assert email.visit_id == visit.id and visit.client_visit_id == "visit-lost-1"
    assert email.source["utm_source"] == "newsletter"
