"""The main loop: a visit sees a dynamic address, writes to it, and the email names the visit."""

import uuid

from redis import Redis
from rq import Queue
from sqlalchemy import select

from tests.test_api import hit
from tests.test_sync import box, imap_settings, now, work  # noqa: F401  (fixtures)
from tracker.extensions import db
from tracker.jobs.sync import enqueue_sync
from tracker.models import Email, Visit


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
    answer = hit(client, site, visit="visit-paid-1", visitor="visitor-0001",
                 url="https://shop.example/?utm_source=yandex&utm_medium=cpc&utm_campaign=spring",
                 r="https://yandex.ru/").json
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
    shown = hit(client, site, visit="visit-lost-1", visitor="visitor-0002", n=True,
                url="https://shop.example/?utm_source=newsletter").json["b"][0]["t"]
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


def test_a_reply_to_the_plain_address_keeps_the_visit_and_is_a_repeat(
        app, client, factory, user, box):
    """The client writes to the address the visit was shown, the shop answers from its
    plain address, and the client's "Re:" goes to that plain address."""
    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    dynamic = factory.rule(user.account, blocks=[block], mode="subaddress",
                           base_address=box.login)
    shown = hit(client, site, visit="visit-thread-1", visitor="visitor-0003",
                url="https://shop.example/?utm_source=yandex&utm_medium=cpc").json["b"][0]["t"]
    first_id = f"{uuid.uuid4().hex}@client.example"
    box.deliver((f"From: Client <client@example.org>\r\nTo: {shown}\r\nSubject: Заявка\r\n"
                 f"Message-ID: <{first_id}>\r\n\r\nHello\r\n").encode(), at=now())
    enqueue_sync(box.id, trigger="manual")
    work(app)
    db.session.expire_all()
    first = db.session.scalar(select(Email))
    assert (first.tracked_address, first.rule_id, first.counted) == (shown, dynamic.id, True)

    # The shop's answer (from its Sent folder, never synced) and the client's reply to it.
    answer_id = f"{uuid.uuid4().hex}@shop.example"
    box.deliver((f"From: Client <client@example.org>\r\nTo: Shop <{box.login}>\r\n"
                 f"Subject: Re: Заявка\r\nMessage-ID: <{uuid.uuid4().hex}@client.example>\r\n"
                 f"In-Reply-To: <{answer_id}>\r\n"
                 f"References: <{first_id}>\r\n <{answer_id}>\r\n\r\nThanks\r\n").encode(),
                at=now())
    # A stranger writing to the plain address is not in any thread.
    box.deliver(message(to=box.login, sender="someone@example.org"), at=now())
    enqueue_sync(box.id, trigger="manual")
    work(app)

    db.session.expire_all()
    reply = db.session.scalar(select(Email).where(Email.subject == "Re: Заявка"))
    assert (reply.in_reply_to, reply.reference_ids) == (answer_id, [first_id, answer_id])
    assert reply.thread_of == first.id
    assert (reply.visit_id, reply.rule_id, reply.attribution) == (
        first.visit_id, dynamic.id, "subaddress")
    assert reply.source["utm_source"] == "yandex" and reply.channel == "paid"
    assert not reply.counted
    stranger = db.session.scalar(select(Email).where(Email.from_address == "someone@example.org"))
    assert (stranger.thread_of, stranger.rule_id, stranger.counted) == (None, None, True)
    client.login(user)
    page = client.get(f"/emails/{reply.id}").get_data(as_text=True)
    assert "This is a reply in the thread of" in page and f"/emails/{first.id}" in page
