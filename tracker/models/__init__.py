"""Database models, split by concern; import them from here."""

from tracker.models.base import AccountOwned, utcnow
from tracker.models.accounts import Account, User
from tracker.models.sites import Site, SiteDomain
from tracker.models.mailboxes import Credential, Mailbox, MailboxFolder, email_count
from tracker.models.blocks import Block, BlockAddress
from tracker.models.rules import PoolAddress, Rule, RuleCondition

__all__ = [
    "Account", "AccountOwned", "Block", "BlockAddress", "Credential", "Mailbox",
    "MailboxFolder", "PoolAddress", "Rule", "RuleCondition", "Site", "SiteDomain", "User",
    "email_count", "utcnow",
]
