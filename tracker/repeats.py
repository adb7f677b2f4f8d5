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


def counted_keys(items, period):
    """Return the keys of the emails that count as new requests.

    Per (sender, recipient) pair, in time order, an email counts when no earlier
    email of the pair has counted, or when at least `period` has passed since the
    last one that did. An email without a known sender always counts: nothing can
    tell it is a repeat. The result depends only on the set of items, never on
    their order.
    """
    if isinstance(period, (int, float)):
        period = timedelta(seconds=period)
    pairs = defaultdict(list)
    counted = set()
    for item in items:
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
