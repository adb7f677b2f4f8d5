"""Shared column helpers."""

from datetime import UTC, datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from tracker.extensions import db


def utcnow():
    """The current time as a naive UTC datetime (stored the same way on every backend)."""
    return datetime.now(UTC).replace(tzinfo=None)


class AccountOwned:
    """Mixin for rows that belong to exactly one account (tenant)."""

    @declared_attr
    def account_id(cls) -> Mapped[int]:
        return mapped_column(
            ForeignKey("account.id", ondelete="CASCADE"), index=True, nullable=False
        )

    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


__all__ = ["AccountOwned", "db", "utcnow"]
