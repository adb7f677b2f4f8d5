"""Websites that include the tracking script."""

import secrets

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.extensions import db
from tracker.models.base import AccountOwned


def new_site_key():
    """A public, unguessable key that the website snippet carries."""
    return secrets.token_urlsafe(16)


class Site(AccountOwned, db.Model):
    """A website of the account; its key identifies it to the public API."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    key: Mapped[str] = mapped_column(String(64), unique=True, default=new_site_key, nullable=False)

    domains: Mapped[list["SiteDomain"]] = relationship(
        back_populates="site",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SiteDomain.position",
    )

    @property
    def domain_names(self):
        return [d.domain for d in self.domains]


class SiteDomain(AccountOwned, db.Model):
    """One domain of a site; a domain belongs to at most one site per account."""

    __table_args__ = (UniqueConstraint("account_id", "domain"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(
        ForeignKey("site.id", ondelete="CASCADE"), index=True, nullable=False
    )
    domain: Mapped[str] = mapped_column(String(253), nullable=False)
    position: Mapped[int] = mapped_column(default=0, nullable=False)

    site: Mapped[Site] = relationship(back_populates="domains")
