"""Webhooks: the URLs an account sends its emails to, each event's delivery and its attempts."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tracker import crypto
from tracker.extensions import db
from tracker.models.base import AccountOwned

# What a URL subscribes to: "new_request" (counted emails only) or "all" (every email).
WEBHOOK_EVENTS = ("new_request", "all")
# Why a URL is paused: "manual" (its owner paused it) or "failing" (no 2xx for a day).
PAUSE_REASONS = ("manual", "failing")


class Webhook(AccountOwned, db.Model):
    """A URL of the account that is sent a signed JSON body for each email it wants."""

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    events: Mapped[str] = mapped_column(String(16), default="new_request", nullable=False)
    # The signing secret, a MultiFernet token (tracker.crypto): signing needs it back,
    # so it cannot be hashed. Shown to the user once, when the URL is added.
    secret_token: Mapped[str] = mapped_column(String(500), nullable=False)
    active: Mapped[bool] = mapped_column(default=True, nullable=False)
    paused_reason: Mapped[str | None] = mapped_column(String(16))
    paused_at: Mapped[datetime | None]
    # The first failed attempt since the last 2xx (None while it answers): a URL that
    # has failed for WEBHOOK_PAUSE_AFTER_SECONDS is paused.
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    # The last failure in words, e.g. "HTTP 500" or "timeout" (shown when paused).
    last_error: Mapped[str | None] = mapped_column(String(300))

    @property
    def secret(self):
        return crypto.decrypt(self.secret_token)

    @secret.setter
    def secret(self, value):
        self.secret_token = crypto.encrypt(value)


class WebhookDelivery(AccountOwned, db.Model):
    """One event for one URL: its body (the same for every attempt) and where it stands.

    state: "pending" (to be sent, at next_attempt_at), "delivered" (a 2xx came back),
    "failed" (no 2xx within the retry period) or "cancelled" (the URL was paused or
    deleted first).
    """

    __table_args__ = (
        UniqueConstraint("webhook_id", "email_id", "event"),
        Index("ix_webhook_delivery_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhook.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # The idempotency key the receiver sees (the body's "id"): the same on every attempt.
    event_id: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    # email.new_request, email.repeat or test.
    event: Mapped[str] = mapped_column(String(32), nullable=False)
    email_id: Mapped[int | None] = mapped_column(
        ForeignKey("email.id", ondelete="SET NULL"), index=True
    )
    body: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    attempts: Mapped[int] = mapped_column(default=0, nullable=False)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(AccountOwned, db.Model):
    """One try at delivering: the delivery log of a URL (the newest are kept)."""

    __table_args__ = (Index("ix_webhook_attempt_webhook_time", "webhook_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed by the composite index above, which starts with it.
    webhook_id: Mapped[int] = mapped_column(
        ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False
    )
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True, nullable=False
    )
    at: Mapped[datetime] = mapped_column(nullable=False)
    attempt: Mapped[int] = mapped_column(nullable=False)
    # The HTTP status, or None when no answer came (then `error` says why).
    status_code: Mapped[int | None]
    # timeout, connect_failed, blocked_address, host_not_found, bad_url, tls_failed,
    # bad_response.
    error: Mapped[str | None] = mapped_column(String(32))
    # The start of the answer (or the error's detail), as received: escaped on display.
    excerpt: Mapped[str] = mapped_column(String(300), default="", nullable=False)
    duration_ms: Mapped[int | None]

    @property
    def ok(self):
        return self.status_code is not None and 200 <= self.status_code < 300
