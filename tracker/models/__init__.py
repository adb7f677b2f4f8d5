"""Database models, split by concern; import them from here."""

from tracker.models.base import AccountOwned, utcnow
from tracker.models.accounts import Account, User
from tracker.models.sites import Site, SiteDomain
from tracker.models.mailboxes import Credential, Mailbox, MailboxFolder, email_count
from tracker.models.emails import Email, SyncRun

__all__ = [
    "Account",
    "AccountOwned",
    "Credential",
    "Email",
    "Mailbox",
    "MailboxFolder",
    "Site",
    "SiteDomain",
    "SyncRun",
    "User",
    "email_count",
    "utcnow",
]
