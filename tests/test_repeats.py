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
