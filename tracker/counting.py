"""The repeat period applied to stored emails: keeps Email.counted equal to the pure rule.

tracker.repeats decides; this module loads the emails a change can affect and
writes back only the flags that differ. Both functions work inside the caller's
transaction and do not commit.
"""

from itertools import groupby

from sqlalchemy import select, update

from tracker.extensions import db
from tracker.models import Email
from tracker.repeats import Item, counted_keys

# Sender/recipient pairs per query: keeps the bound parameters well under every limit.
PAIRS_PER_QUERY = 300
UPDATES_PER_STATEMENT = 1000

_COLUMNS = (Email.id, Email.from_address, Email.recipient, Email.internaldate,
            Email.fingerprint, Email.folder, Email.uid, Email.counted)


def _item(row):
    # The tiebreak orders emails of the same instant the same way whatever the sync order.
    return Item(row.id, row.from_address, row.recipient, row.internaldate,
                tiebreak=f"{row.fingerprint}\0{row.folder}\0{row.uid}")


def _changes(rows, period):
    keep = counted_keys([_item(r) for r in rows], period)
    return [{"id": r.id, "counted": r.id in keep} for r in rows if (r.id in keep) != r.counted]


def _write(changes):
    for start in range(0, len(changes), UPDATES_PER_STATEMENT):
        db.session.execute(update(Email), changes[start:start + UPDATES_PER_STATEMENT])
    return len(changes)


def recount_pairs(mailbox_id, period_seconds, pairs):
    """Recount the emails of the given (sender, recipient) pairs; return how many flags changed.

    Call it after storing emails: a late-arriving older email can turn a counted
    email of its pair into a repeat, and the other way round.
    """
    pairs = sorted({(s, r) for s, r in pairs if s}, key=lambda p: (p[0], p[1] or ""))
    changes = []
    for start in range(0, len(pairs), PAIRS_PER_QUERY):
        chunk = set(pairs[start:start + PAIRS_PER_QUERY])
        # By sender only: one seek of the (mailbox_id, from_address, recipient) index
        # per sender. A row-value IN on (sender, recipient) is not seekable on SQLite,
        # and IN x IN seeks every sender/recipient combination. The senders' other
        # pairs are dropped here.
        rows = db.session.execute(
            select(*_COLUMNS).where(Email.mailbox_id == mailbox_id,
                                    Email.from_address.in_(sorted({s for s, _r in chunk})))
        ).all()
        rows = [r for r in rows if (r.from_address, r.recipient) in chunk]
        changes += _changes(rows, period_seconds)
    return _write(changes)


def recount_mailbox(mailbox_id, period_seconds):
    """Recount every email of a mailbox (after its repeat period changed); return the changes.

    Streams the emails pair by pair, so memory stays bounded by the largest pair.
    """
    query = (
        select(*_COLUMNS)
        .where(Email.mailbox_id == mailbox_id)
        .order_by(Email.from_address, Email.recipient, Email.internaldate, Email.id)
        .execution_options(yield_per=2000)
    )
    changes = []
    for _pair, rows in groupby(db.session.execute(query),
                               key=lambda r: (r.from_address, r.recipient)):
        changes += _changes(list(rows), period_seconds)
    return _write(changes)
