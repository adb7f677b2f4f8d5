"""The repeat period applied to stored emails: keeps Email.counted equal to the pure rule.

tracker.repeats decides; this module loads the emails a change can affect and
writes back only the flags that differ. Both functions work inside the caller's
transaction and do not commit.

Besides the pair's own emails the rule needs their copies elsewhere in the account
(the same Message-ID and INTERNALDATE in another mailbox: the same inbox connected
twice), which are loaded by Message-ID; and storing a copy that comes first makes
the copies after it repeats, so their pairs are recounted too.
"""

from collections import defaultdict
from itertools import groupby

from sqlalchemy import func, or_, select, update

from tracker.extensions import db
from tracker.models.emails import BOT_VISIT
from tracker.models import Email, Mailbox
from tracker.repeats import Item, counted_keys

# Sender/recipient pairs per query: keeps the bound parameters well under every limit.
PAIRS_PER_QUERY = 300
UPDATES_PER_STATEMENT = 1000

MESSAGE_IDS_PER_QUERY = 500

_COLUMNS = (Email.id, Email.account_id, Email.mailbox_id, Email.from_address, Email.recipient,
            Email.internaldate, Email.fingerprint, Email.folder, Email.uid, Email.counted,
            Email.message_id, Email.thread_of, Email.uncertain)


def _item(row):
    # The tiebreak orders emails of the same instant the same way whatever the sync order.
    return Item(row.id, row.from_address, row.recipient, row.internaldate,
                tiebreak=f"{row.fingerprint}\0{row.folder}\0{row.uid}",
                thread_reply=row.thread_of is not None,
                suspected_spam=row.uncertain == BOT_VISIT,
                copy_key=(row.message_id, row.internaldate) if row.message_id else None,
                copy_order=(row.mailbox_id, row.folder, row.uid))


def _copies(account_id, message_ids):
    """The account's emails with these Message-IDs (all columns of _COLUMNS)."""
    message_ids = sorted({m for m in message_ids if m})
    found = []
    for start in range(0, len(message_ids), MESSAGE_IDS_PER_QUERY):
        found += db.session.execute(
            select(*_COLUMNS).where(
                Email.account_id == account_id,
                Email.message_id.in_(message_ids[start:start + MESSAGE_IDS_PER_QUERY]))
        ).all()
    return found


def _changes(rows, period, copies=()):
    """The flags to write for rows; copies: the account's emails sharing their Message-IDs."""
    ids = {r.id for r in rows}
    keys = {(r.message_id, r.internaldate) for r in rows if r.message_id}
    elsewhere = [_item(c) for c in copies
                 if c.id not in ids and (c.message_id, c.internaldate) in keys]
    keep = counted_keys([_item(r) for r in rows], period, elsewhere)
    return [{"id": r.id, "counted": r.id in keep} for r in rows if (r.id in keep) != r.counted]


def _later_copies(rows, copies):
    """Copies outside rows that come after a row of theirs: storing rows may make them repeats."""
    ids = {r.id for r in rows}
    first = {}
    for r in rows:
        if r.message_id:
            key = (r.message_id, r.internaldate)
            order = (r.mailbox_id, r.folder, r.uid)
            first[key] = min(first.get(key, order), order)
    return [c for c in copies if c.id not in ids
            and (c.message_id, c.internaldate) in first
            and (c.mailbox_id, c.folder, c.uid) > first[(c.message_id, c.internaldate)]]


def _recount_followers(followers, done):
    """Recount the pairs of the copies in `followers` (rows of other pairs or mailboxes)."""
    by_mailbox = defaultdict(set)
    for row in followers:
        pair = (row.from_address, row.recipient)
        if (row.mailbox_id, pair) not in done:
            by_mailbox[row.mailbox_id].add(pair)
    changed = 0
    for mailbox_id, pairs in sorted(by_mailbox.items()):
        period = db.session.scalar(select(Mailbox.repeat_period_seconds)
                                   .where(Mailbox.id == mailbox_id))
        changed += recount_pairs(mailbox_id, period or 0, pairs, follow=False)
    return changed


def _write(changes):
    for start in range(0, len(changes), UPDATES_PER_STATEMENT):
        db.session.execute(update(Email), changes[start:start + UPDATES_PER_STATEMENT])
    return len(changes)


def recount_pairs(mailbox_id, period_seconds, pairs, follow=True):
    """Recount the emails of the given (sender, recipient) pairs; return how many flags changed.

    Call it after storing emails: a late-arriving older email can turn a counted
    email of its pair into a repeat, and the other way round. follow: also recount
    the pairs of the copies (same Message-ID and INTERNALDATE) that come after these
    emails elsewhere in the account.
    """
    all_pairs = {(s, r) for s, r in pairs}
    pairs = sorted({(s, r) for s, r in pairs if s}, key=lambda p: (p[0], p[1] or ""))
    changes, followers = [], []
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
        copies = _copies(rows[0].account_id, (r.message_id for r in rows)) if rows else []
        changes += _changes(rows, period_seconds, copies)
        followers += _later_copies(rows, copies)
    # Emails without a sender always count, unless they are a thread reply or a copy.
    recipients = {r for s, r in all_pairs if not s}
    if recipients:
        known = sorted(r for r in recipients if r)
        rows = db.session.execute(
            select(*_COLUMNS).where(
                Email.mailbox_id == mailbox_id,
                or_(Email.from_address.is_(None), Email.from_address == ""),
                or_(Email.recipient.in_(known),
                    *([Email.recipient.is_(None)] if None in recipients else [])))
        ).all()
        copies = _copies(rows[0].account_id, (r.message_id for r in rows)) if rows else []
        changes += _changes(rows, period_seconds, copies)
        followers += _later_copies(rows, copies)
    changed = _write(changes)
    if follow and followers:
        done = {(mailbox_id, pair) for pair in all_pairs}
        changed += _recount_followers(followers, done)
    return changed


def recount_mailbox(mailbox_id, period_seconds):
    """Recount every email of a mailbox (after its repeat period changed); return the changes.

    Streams the emails pair by pair, so memory stays bounded by the largest pair.
    """
    account_id = db.session.scalar(select(Mailbox.account_id).where(Mailbox.id == mailbox_id))
    # The Message-IDs stored more than once in the account (usually none): their copies.
    copied = db.session.execute(
        select(Email.message_id).where(Email.account_id == account_id,
                                       Email.message_id.is_not(None))
        .group_by(Email.message_id, Email.internaldate).having(func.count() > 1)
    ).scalars().all()
    copies = _copies(account_id, copied) if copied else []
    by_message = defaultdict(list)
    for copy in copies:
        by_message[copy.message_id].append(copy)
    query = (
        select(*_COLUMNS)
        .where(Email.mailbox_id == mailbox_id)
        .order_by(Email.from_address, Email.recipient, Email.internaldate, Email.id)
        .execution_options(yield_per=2000)
    )
    changes = []
    for _pair, rows in groupby(db.session.execute(query),
                               key=lambda r: (r.from_address, r.recipient)):
        rows = list(rows)
        mine = [c for r in rows if r.message_id in by_message for c in by_message[r.message_id]]
        changes += _changes(rows, period_seconds, mine)
    return _write(changes)
