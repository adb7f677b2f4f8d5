"""The repeat period (дедупликация): which emails count as new requests. Pure logic."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Item:
    """One email as the repeat rule sees it."""

    key: object  # the caller's identity for the email (a row id)
    sender: str | None
    recipient: str | None
    at: datetime  # when it arrived (INTERNALDATE)
    tiebreak: str = ""  # orders emails of the same instant the same way on every run
    # A reply in the thread of an earlier stored email (Email.thread_of): never a new request.
    thread_reply: bool = False
    # Sent to an address given to a bot's visit (tracker.attribution.BOT_VISIT): never a
    # new request.
    suspected_spam: bool = False
    # The same message stored twice (two folders, the same inbox connected twice): items
    # with equal copy_key (Message-ID and INTERNALDATE; None when there is no Message-ID)
    # are copies, and only the one first by copy_order ((mailbox id, folder, UID)) may count.
    copy_key: object = None
    copy_order: tuple = ()


def later_copies(items):
    """The keys of the items that are a copy of another item first by copy_order."""
    first = {}
    for item in items:
        if item.copy_key is None:
            continue
        known = first.get(item.copy_key)
        if known is None or (item.copy_order, str(item.key)) < known:
            first[item.copy_key] = (item.copy_order, str(item.key))
    return {item.key for item in items if item.copy_key is not None
            and (item.copy_order, str(item.key)) != first[item.copy_key]}


def counted_keys(items, period, elsewhere=()):
    """Return the keys of the emails that count as new requests.

    Per (sender, recipient) pair, in time order, an email counts when no earlier
    email of the pair has counted, or when at least `period` has passed since the
    last one that did. An email without a known sender always counts: nothing can
    tell it is a repeat. A thread reply never counts, nor does suspected spam or a
    later copy of the same message (see Item.copy_key); none of them is a counted
    email the period is measured from. `elsewhere`: copies of these items stored elsewhere (another
    mailbox of the account), which only make these later copies; their keys are
    never returned. The result depends only on the sets of items, never on their
    order.
    """
    if isinstance(period, (int, float)):
        period = timedelta(seconds=period)
    items = list(items)
    skipped = later_copies([*items, *elsewhere])
    pairs = defaultdict(list)
    counted = set()
    for item in items:
        if item.thread_reply or item.suspected_spam or item.key in skipped:
            continue
        if not item.sender:
            counted.add(item.key)
        else:
            pairs[(item.sender, item.recipient or "")].append(item)
    for group in pairs.values():
        group.sort(key=lambda i: (i.at, i.tiebreak, str(i.key)))
        last = None
        for item in group:
            if last is None or item.at - last >= period:
                counted.add(item.key)
                last = item.at
    return counted
