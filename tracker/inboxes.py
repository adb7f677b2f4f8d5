"""One inbox, one mailbox: which connected mailbox already reads the inbox a credential reaches.

An inbox is told by what the server says, not by the typed host name
(`imap.yandex.ru` and `imap.yandex.com`, `localhost` and `127.0.0.1` are one inbox):
the same login (case-insensitively) whose INBOX has the UIDVALIDITY a connection
check just read, or whose host resolves to an address the check connected to. The
mailbox and credential forms ask before saving; `claim` makes the ask-then-save of
two simultaneous saves of one login take turns, so both cannot pass.
"""

import hashlib
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import func, select

from tracker import imap
from tracker.extensions import db, redis_client
from tracker.models import Credential, Mailbox

# Long enough for a save's check of the other mailboxes (host names resolved through the
# guard, a database write); a crashed holder's claim ends by itself after it.
CLAIM_SECONDS = 60


class InboxBusy(RuntimeError):
    """Another save of the same login did not finish within CLAIM_SECONDS."""


@contextmanager
def claim(login):
    """Hold the save of mailboxes with this login (case-insensitive) for this process;
    waits while another process holds it, raises InboxBusy after CLAIM_SECONDS."""
    digest = hashlib.sha256(login.strip().lower().encode()).hexdigest()[:32]
    lock = redis_client().lock(f"tracker:inbox-claim:{digest}", timeout=CLAIM_SECONDS,
                               blocking_timeout=CLAIM_SECONDS)
    if not lock.acquire():
        raise InboxBusy(login)
    try:
        yield
    finally:
        lock.release()


def inbox_uidvalidity(mailbox):
    """The UIDVALIDITY of the mailbox's INBOX as its last sync saw it, or None."""
    return next((folder.uidvalidity for folder in mailbox.folders
                 if folder.name.upper() == "INBOX" and folder.uidvalidity), None)


def same_inbox(credential, result, mailbox=None):
    """The first mailbox, of any account, that reads the inbox these credentials reach, or None.

    result: the connection check just made with the credentials (imap.CheckResult):
    the UIDVALIDITY of INBOX and the addresses it connected to or resolved. When
    the check could not tell (it failed), the host is resolved here. A mailbox being
    edited with its credentials unchanged is compared only with older mailboxes, so
    that the first of two already connected stays editable.
    """
    query = (select(Mailbox).join(Mailbox.credential)
             .where(func.lower(Credential.login) == credential.login.lower(),
                    Credential.id != credential.id)
             .order_by(Mailbox.id))
    if mailbox is not None and mailbox.id is not None:
        query = query.where(Mailbox.id != mailbox.id)
        if mailbox.credential_id == credential.id:
            query = query.where(Mailbox.id < mailbox.id)
    candidates = db.session.scalars(query).all()
    if not candidates:
        return None
    if result.uidvalidity is not None:
        for other in candidates:
            if inbox_uidvalidity(other) == result.uidvalidity:
                return other
    settings = imap.options(current_app.config)
    mine = set(result.addresses) or set(
        imap.host_addresses(credential.host, credential.port, **settings))
    if not mine:
        return None
    resolved = {}
    for other in candidates:
        where = (other.credential.host, other.credential.port)
        if where not in resolved:
            resolved[where] = set(imap.host_addresses(*where, **settings))
        if mine & resolved[where]:
            return other
    return None
