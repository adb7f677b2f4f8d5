"""Visits from the website script, the addresses they were given, and what was displayed."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.extensions import db
from tracker.models.base import AccountOwned, utcnow

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


class Visit(AccountOwned, db.Model):
    """One visit of one visitor to a site, as the script reported it."""

    __table_args__ = (UniqueConstraint("site_id", "client_visit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(
        ForeignKey("site.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # Ids the script makes up and keeps first-party: not secrets, not trusted.
    visitor_id: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    client_visit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    landing_url: Mapped[str] = mapped_column(String(2000), default="", nullable=False)
    referrer: Mapped[str] = mapped_column(String(2000), default="", nullable=False)
    utm_source: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    utm_medium: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    utm_campaign: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    utm_content: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    utm_term: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    channel: Mapped[str] = mapped_column(String(32), default="direct", nullable=False)
    ga_client_id: Mapped[str] = mapped_column(String(100), default="", nullable=False)
    ym_client_id: Mapped[str] = mapped_column(String(100), default="", nullable=False)
    user_agent: Mapped[str] = mapped_column(String(500), default="", nullable=False)
    is_bot: Mapped[bool] = mapped_column(default=False, nullable=False)
    page_views: Mapped[int] = mapped_column(default=1, nullable=False)

    assignments: Mapped[list["Assignment"]] = relationship(
        back_populates="visit", cascade="all, delete-orphan", passive_deletes=True
    )

    def source(self):
        """The snapshot of source fields that an attributed email keeps."""
        fields = {name: getattr(self, name) for name in UTM_FIELDS}
        fields.update(
            channel=self.channel, referrer=self.referrer, landing_url=self.landing_url,
            ga_client_id=self.ga_client_id, ym_client_id=self.ym_client_id,
        )
        return fields


class Assignment(AccountOwned, db.Model):
    """An address a visit was given by a rule, from when to when (kept as history).

    Dynamic rules: `token` is unique per site (sub-address and catch-all); a pool
    lease points at its pool address and lasts until `expires_at`, which moves
    forward while the visit stays active.
    """

    __table_args__ = (
        UniqueConstraint("site_id", "token"),
        Index("ix_assignment_address_time", "account_id", "address", "assigned_at"),
        Index("ix_assignment_visit_rule", "visit_id", "rule_id"),
        # Pool usage per rule and day (tracker.reports.pools).
        Index("ix_assignment_rule_kind_time", "rule_id", "kind", "assigned_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(
        ForeignKey("site.id", ondelete="CASCADE"), index=True, nullable=False
    )
    visit_id: Mapped[int] = mapped_column(
        ForeignKey("visit.id", ondelete="CASCADE"), nullable=False
    )
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("rule.id", ondelete="SET NULL"))
    pool_address_id: Mapped[int | None] = mapped_column(
        ForeignKey("pool_address.id", ondelete="SET NULL"), index=True
    )
    # static, subaddress, catchall, pool or fallback.
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    token: Mapped[str | None] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    expires_at: Mapped[datetime | None]

    visit: Mapped[Visit] = relationship(back_populates="assignments")


class Display(AccountOwned, db.Model):
    """The script's report that it showed an address in a block, and how many times."""

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(
        ForeignKey("visit.id", ondelete="CASCADE"), index=True, nullable=False
    )
    block_id: Mapped[int | None] = mapped_column(ForeignKey("block.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    count: Mapped[int] = mapped_column(default=1, nullable=False)
    at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)


class IngestCursor(db.Model):
    """How far a Redis stream has been written to the database (the last entry id).

    Moved in the same transaction as the rows written, so a writer that dies
    between its commit and trimming the stream writes nothing twice.
    """

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[str] = mapped_column(String(40), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
