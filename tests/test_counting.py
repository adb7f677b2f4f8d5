"""The repeat period on stored emails: the reference example, any arrival order, recounts."""

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.test_repeats import reference
from tests.test_sync import box, emails, imap_settings, mail, sync_now, work  # noqa: F401
from tracker import counting
from tracker.extensions import db
from tracker.models import Email
from tracker.repeats import Item

DAY = 86400


def counted_uids(mailbox_id):
    return {e.uid for e in emails(mailbox_id) if e.counted}


def test_reference_example_in_the_database(ctx, factory, user):
    mailbox = factory.mailbox(user.account)
    # Stored out of order: the result depends only on the set of emails.
    third = factory.email(mailbox, datetime(2023, 8, 1, 13, 0), uid=3)
    first = factory.email(mailbox, datetime(2023, 7, 31, 12, 0), uid=1)
    second = factory.email(mailbox, datetime(2023, 7, 31, 13, 0), uid=2)
    assert counting.recount_mailbox(mailbox.id, DAY) == 1
    db.session.commit()
    assert counted_uids(mailbox.id) == {first.uid, third.uid}
    assert not second.counted


def test_recount_pairs_touches_only_the_given_pairs(ctx, factory, user):
    mailbox = factory.mailbox(user.account)
    at = datetime(2024, 1, 1, 9, 0)
    a1 = factory.email(mailbox, at, sender="a@x.example")
    a2 = factory.email(mailbox, at + timedelta(hours=1), sender="a@x.example")
    b1 = factory.email(mailbox, at, sender="b@x.example")
    b2 = factory.email(mailbox, at + timedelta(hours=1), sender="b@x.example")
    counting.recount_pairs(mailbox.id, DAY, [("a@x.example", "info@shop.example")])
    db.session.commit()
    assert counted_uids(mailbox.id) == {a1.uid, b1.uid, b2.uid}
    assert a2.uid not in counted_uids(mailbox.id)


def test_unknown_sender_and_missing_recipient(ctx, factory, user):
    mailbox = factory.mailbox(user.account)
    at = datetime(2024, 1, 1)
    x1 = factory.email(mailbox, at, sender=None)
    x2 = factory.email(mailbox, at, sender=None)
    y1 = factory.email(mailbox, at, recipient=None)
    y2 = factory.email(mailbox, at + timedelta(minutes=5), recipient=None)
    counting.recount_pairs(mailbox.id, DAY, [(None, "info@shop.example"), ("lead@example.org", None)])
    db.session.commit()
    assert counted_uids(mailbox.id) == {x1.uid, x2.uid, y1.uid}
    assert y2.uid not in counted_uids(mailbox.id)


arrivals = st.lists(
    st.tuples(
        st.sampled_from(["a@x.example", "b@x.example", None]),
        st.sampled_from(["info@shop.example", "sales@shop.example", None]),
        st.integers(min_value=0, max_value=72 * 60),  # minutes within three days
        st.integers(min_value=0, max_value=3),  # the batch it arrives in
        st.sampled_from(["<same@x>", "<a@x>", "<b@x>", "<c@x>"]),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals, st.integers(min_value=0, max_value=48 * 60))
def test_batches_in_any_order_end_as_the_reference_says(ctx, factory, user, rows, minutes):
    """Emails arriving in any order and batching, each batch recounting its pairs,
    end with exactly the counted set of the reference rule over all of them."""
    mailbox = factory.mailbox(user.account)
    base = datetime(2023, 7, 31)
    period = minutes * 60
    stored = []
    for batch in range(4):
        new = [factory.email(mailbox, base + timedelta(minutes=m), sender=s, recipient=r,
                             uid=n + 1, fingerprint=fp, commit=False)
               for n, (s, r, m, b, fp) in enumerate(rows) if b == batch]
        db.session.flush()
        counting.recount_pairs(mailbox.id, period, {(e.from_address, e.recipient) for e in new})
        db.session.commit()
        stored += new
    items = [Item(e.uid, e.from_address, e.recipient, e.internaldate,
                  tiebreak=f"{e.fingerprint}\0{e.folder}\0{e.uid}") for e in stored]
    assert counted_uids(mailbox.id) == reference(items, timedelta(seconds=period))


def test_a_late_older_email_recounts_its_pair(app, ctx, box):
    now = datetime.now(UTC)
    second = box.deliver(mail(2), now - timedelta(hours=2))
    third = box.deliver(mail(3), now - timedelta(hours=1))
    sync_now(app, box.id)
    assert counted_uids(box.id) == {second}
    # An older email arrives late (e.g. moved in from another folder).
    first = box.deliver(mail(1), now - timedelta(hours=3))
    sync_now(app, box.id)
    assert counted_uids(box.id) == {first}
    assert {e.uid for e in emails(box.id)} == {first, second, third}


def test_changing_the_period_recounts_the_mailbox(app, ctx, factory, user, logged_in):
    mailbox = factory.mailbox(user.account)
    at = datetime(2023, 7, 31, 12, 0)
    uids = [factory.email(mailbox, at + timedelta(hours=h)).uid for h in (0, 1, 25)]
    counting.recount_mailbox(mailbox.id, DAY)
    db.session.commit()
    assert counted_uids(mailbox.id) == {uids[0], uids[2]}

    response = logged_in.post(f"/mailboxes/{mailbox.id}/edit", data={
        "active": "y", "credential": str(mailbox.credential_id), "repeat_value": "0",
        "repeat_unit": "hours", "folders": ["INBOX"],
        "save_anyway": "y"})  # the factory's mail server is not reachable
    assert response.status_code == 302
    work(app)
    assert counted_uids(mailbox.id) == set(uids)

    response = logged_in.post(f"/mailboxes/{mailbox.id}/edit", data={
        "active": "y", "credential": str(mailbox.credential_id), "repeat_value": "2",
        "repeat_unit": "days", "folders": ["INBOX"], "save_anyway": "y"})
    assert response.status_code == 302
    work(app)
    assert counted_uids(mailbox.id) == {uids[0]}
    assert db.session.scalar(select(Email.counted).where(Email.uid == uids[1])) is False
