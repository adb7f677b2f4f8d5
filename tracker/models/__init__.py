"""Database models, split by concern; import them from here."""

from tracker.models.base import AccountOwned, utcnow
from tracker.models.accounts import Account, User
from tracker.models.sites import Site, SiteDomain

__all__ = ["Account", "AccountOwned", "Site", "SiteDomain", "User", "utcnow"]
