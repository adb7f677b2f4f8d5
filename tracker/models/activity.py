"""The activity log of an account: who created, changed or deleted what, and when.

Rows are written by tracker.activity.record() after the change committed. The
object's label is copied (the object may be deleted later), as is the user's email.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db
from tracker.models.base import utcnow


class ActivityEntry(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    user_email: Mapped[str | None] = mapped_column(String(320))
    # created, changed or deleted (tracker.activity.ACTIONS).
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    # mailbox, credential, block, rule, site, webhook, api_token (tracker.activity.OBJECTS).
    object_type: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[int | None]
    object_label: Mapped[str] = mapped_column(String(300), default="", nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    __table_args__ = (Index("ix_activity_entry_account_created", "account_id", "created_at"),)
