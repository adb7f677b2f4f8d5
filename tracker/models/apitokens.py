"""Tokens of the read API (/api/v1/emails...): per account, named, revocable, read-only."""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db
from tracker.models.base import AccountOwned


class ApiToken(AccountOwned, db.Model):
    """A bearer token of an account. Only the SHA-256 digest of the token is stored:
    the token itself is shown once, when it is created (tracker.integrations.apitokens)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # Hex SHA-256 of the whole token; unique, the look-up key of every API request.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # The first characters of the token, shown in the list to tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    @property
    def active(self):
        return self.revoked_at is None
