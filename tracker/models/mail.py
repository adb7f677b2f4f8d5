"""Outgoing email: one row per message the app sends (invitations, password resets).

The row is written before the message is queued, so a message is never lost
silently: it ends either `sent` or `failed` (with the last error), and the failed
ones are listed to the account's owners. The text is kept only encrypted
(tracker.crypto) and only until the message is sent or given up on: it may carry a
one-time link.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db
from tracker.models.base import utcnow


class OutgoingMail(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # The account whose owners see a failure; None for mail that belongs to no account.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    # Fernet token of the text; emptied once the message is sent or failed.
    body_token: Mapped[str | None] = mapped_column(Text)
    # pending, sent or failed.
    state: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    attempts: Mapped[int] = mapped_column(default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outgoing_mail_state_created", "state", "created_at"),)
