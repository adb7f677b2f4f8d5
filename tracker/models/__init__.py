"""Database models, split by concern; import them from here."""

from tracker.models.base import AccountOwned, utcnow
from tracker.models.accounts import Account, Invitation, Membership, User
from tracker.models.sites import Site, SiteDomain
from tracker.models.mailboxes import Credential, Mailbox, MailboxFolder, email_count
from tracker.models.blocks import Block, BlockAddress
from tracker.models.rules import PoolAddress, PoolUsage, Rule, RuleCondition
from tracker.models.visits import Assignment, Display, IngestCursor, Visit
from tracker.models.emails import Email, SyncRun
from tracker.models.integrations import Webhook, WebhookAttempt, WebhookDelivery
from tracker.models.apitokens import ApiToken
from tracker.models.activity import ActivityEntry
from tracker.models.mail import OutgoingMail
from tracker.models.passwords import PasswordReset

__all__ = [
    "Account", "AccountOwned", "ApiToken", "Assignment", "Block", "BlockAddress", "Credential", "Display",
    "Email", "IngestCursor", "Invitation", "Membership", "Mailbox", "MailboxFolder", "PoolAddress", "PoolUsage", "Rule", "RuleCondition", "Site",
    "SiteDomain", "SyncRun", "User", "Visit", "Webhook", "WebhookAttempt", "WebhookDelivery", "email_count", "utcnow",
]
__all__ += ["ActivityEntry", "OutgoingMail", "PasswordReset"]
