"""The repeat period as a pure function: the reference example and order independence."""

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.repeats import Item, counted_keys

DAY = timedelta(days=1)


def test_reference_example():
    # Period 1 day; 31 Jul 12:00, 31 Jul 13:00, 1 Aug 13:00 -> the first and the third count.
    items = [
        Item(1, "lead@example.org", "info@shop.example", datetime(2023, 7, 31, 12, 0)),
        Item(2, "lead@example.org", "info@shop.example", datetime(2023, 7, 31, 13, 0)),
        Item(3, "lead@example.org", "info@shop.example", datetime(2023, 8, 1, 13, 0)),
    ]
    assert counted_keys(items, DAY) == {1, 3}
    assert counted_keys(list(reversed(items)), DAY) == {1, 3}


def test_repeat_is_measured_from_the_last_counted_email_not_the_last_email():
    start = datetime(2024, 1, 1, 0, 0)
    items = [Item(n, "a@x.example", "b@y.example", start + timedelta(hours=10 * n)) for n in range(6)]
    # 0h counts; 10h, 20h repeat; 30h counts (>= 24h after 0h); 40h, 50h repeat.
    assert counted_keys(items, DAY) == {0, 3}


def test_exactly_one_period_later_counts():
    at = datetime(2024, 1, 1, 9, 0)
    items = [Item("a", "s@x", "r@y", at), Item("b", "s@x", "r@y", at + DAY)]
    assert counted_keys(items, DAY) == {"a", "b"}


def test_pairs_are_independent():
    at = datetime(2024, 1, 1)
    items = [
        Item(1, "s@x", "r1@y", at),
        Item(2, "s@x", "r2@y", at + timedelta(minutes=1)),
        Item(3, "other@x", "r1@y", at + timedelta(minutes=2)),
        Item(4, "s@x", "r1@y", at + timedelta(minutes=3)),
    ]
    assert counted_keys(items, DAY) == {1, 2, 3}


def test_zero_period_counts_everything_and_seconds_are_accepted():
    at = datetime(2024, 1, 1)
    items = [Item(n, "s@x", "r@y", at) for n in range(3)]
    assert counted_keys(items, 0) == {0, 1, 2}
    assert counted_keys(items, 3600) == {0}


def test_unknown_sender_always_counts():
    at = datetime(2024, 1, 1)
    assert counted_keys([Item(1, None, "r@y", at), Item(2, None, "r@y", at)], DAY) == {1, 2}


def reference(items, period):
    """The rule, spelled out as slowly as possible."""
    result = set()
    for item in items:
        if not item.sender:
            result.add(item.key)
            continue
        same = sorted((i for i in items if (i.sender, i.recipient) == (item.sender, item.recipient)),
                      key=lambda i: (i.at, i.tiebreak, str(i.key)))
        last = None
        for other in same:
            ok = last is None or other.at - last >= period
            if ok:
                last = other.at
            if other is item:
                if ok:
                    result.add(item.key)
                break
    return result


emails = st.lists(
    st.tuples(
        st.sampled_from(["a@x.example", "b@x.example", None]),
        st.sampled_from(["info@shop.example", "sales@shop.example"]),
        st.integers(min_value=0, max_value=72 * 60),  # minutes within three days
    ),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(emails, st.integers(min_value=0, max_value=48 * 60), st.randoms())
def test_counted_set_matches_reference_and_ignores_arrival_order(rows, minutes, rnd):
    base = datetime(2023, 7, 31)
    items = [Item(n, s, r, base + timedelta(minutes=m), tiebreak=f"<{n}@id>")
             for n, (s, r, m) in enumerate(rows)]
    period = timedelta(minutes=minutes)
    expected = reference(items, period)
    assert counted_keys(items, period) == expected
    shuffled = items[:]
    rnd.shuffle(shuffled)
    assert counted_keys(shuffled, period) == expected


def test_late_arriving_older_email_recounts_its_pair():
    at = datetime(2023, 7, 31, 12, 0)
    synced_first = [Item(2, "s@x", "r@y", at + timedelta(hours=20)),
                    Item(3, "s@x", "r@y", at + timedelta(hours=30))]
    assert counted_keys(synced_first, DAY) == {2}
    late = Item(1, "s@x", "r@y", at)
    assert counted_keys([*synced_first, late], DAY) == {1, 3}


def test_a_thread_reply_never_counts_and_the_period_is_not_measured_from_it():
    at = datetime(2024, 1, 1, 9, 0)
    items = [Item(1, "s@x", "r@y", at),
             Item(2, "s@x", "r@y", at + 2 * DAY, thread_reply=True),
             Item(3, "s@x", "r@y", at + 2 * DAY + timedelta(hours=1)),
             Item(4, None, "r@y", at, thread_reply=True)]
    # 2 would count by the period, but it continues a thread; 3 then counts.
    assert counted_keys(items, DAY) == {1, 3}
    assert counted_keys(list(reversed(items)), 0) == {1, 3}


def copy(key, at, mailbox, folder, uid, sender="s@x", message_id="<m@x>"):
    return Item(key, sender, "r@y", at, tiebreak=f"{message_id}\0{folder}\0{uid}",
                copy_key=(message_id, at), copy_order=(mailbox, folder, uid))


def test_the_same_message_twice_counts_once_whatever_the_order():
    at = datetime(2024, 1, 1, 9, 0)
    # The same message in two folders of one mailbox, with a zero period.
    inbox, archive = copy(1, at, 1, "INBOX", 7), copy(2, at, 1, "Archive", 3)
    assert counted_keys([inbox, archive], 0) == {2}
    assert counted_keys([archive, inbox], 0) == {2}
    # A message without a Message-ID is never taken for a copy.
    plain = [Item(n, "s@x", "r@y", at) for n in (5, 6)]
    assert counted_keys(plain, 0) == {5, 6}
    # Another INTERNALDATE: another delivery of the message, not a copy.
    again = copy(3, at + timedelta(seconds=1), 1, "INBOX", 8)
    assert counted_keys([inbox, again], 0) == {1, 3}
    # Copies without a sender (which always count otherwise) count once too.
    assert counted_keys([copy(8, at, 2, "INBOX", 1, sender=None),
                         copy(9, at, 1, "INBOX", 9, sender=None)], DAY) == {9}


def test_a_copy_in_another_mailbox_makes_this_one_a_repeat():
    at = datetime(2024, 1, 1, 9, 0)
    second = copy(2, at, 2, "INBOX", 1)  # the same inbox connected again as mailbox 2
    first = copy(1, at, 1, "INBOX", 40)
    assert counted_keys([second], DAY, elsewhere=[first]) == set()
    # The first copy counts; the later one elsewhere changes nothing and is never returned.
    assert counted_keys([first], DAY, elsewhere=[second]) == {1}
    # Not counted itself, the copy is no email the period is measured from.
    later = Item(3, "s@x", "r@y", at + timedelta(hours=1))
    assert counted_keys([second, later], DAY, elsewhere=[first]) == {3}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["<a@x>", "<b@x>", None]), st.integers(0, 2),
                          st.integers(1, 2), st.sampled_from(["INBOX", "Sent"]),
                          st.booleans()), max_size=12),
       st.integers(min_value=0, max_value=120), st.randoms())
def test_copies_and_threads_count_at_most_once_in_any_order(rows, minutes, rnd):
    base = datetime(2024, 1, 1)
    items = [Item(n, "s@x", "r@y", base + timedelta(minutes=m), tiebreak=f"{mid}\0{f}\0{n}",
                  thread_reply=reply,
                  copy_key=(mid, base + timedelta(minutes=m)) if mid else None,
                  copy_order=(box, f, n))
             for n, (mid, m, box, f, reply) in enumerate(rows)]
    period = timedelta(minutes=minutes)
    counted = counted_keys(items, period)
    shuffled = items[:]
    rnd.shuffle(shuffled)
    assert counted_keys(shuffled, period) == counted
    assert not any(item.thread_reply for item in items if item.key in counted)
    keys = [item.copy_key for item in items if item.key in counted and item.copy_key]
    assert len(keys) == len(set(keys))


def test_suspected_spam_never_counts_and_the_period_is_not_measured_from_it():
    at = datetime(2026, 11, 1, 12, 0)
    items = [
        Item("spam", "a@x", "info@y", at, suspected_spam=True),
        Item("later", "a@x", "info@y", at + timedelta(hours=1)),
        Item("nosender", None, "info@y", at, suspected_spam=True),
    ]
    assert counted_keys(items, DAY) == {"later"}
