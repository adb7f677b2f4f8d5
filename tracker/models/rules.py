"""Rules: which address a segment of visitors sees in which blocks."""

from datetime import date, datetime

from sqlalchemy import Column, ForeignKey, Index, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.extensions import db
from tracker.models.base import AccountOwned
from tracker.models.blocks import Block

KINDS = ("static", "dynamic")
DYNAMIC_MODES = ("subaddress", "catchall", "pool")
DEFAULT_RESERVATION_MINUTES = 30

rule_block = Table(
    "rule_block",
    db.metadata,
    Column("rule_id", ForeignKey("rule.id", ondelete="CASCADE"), primary_key=True),
    Column("block_id", ForeignKey("block.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Rule(AccountOwned, db.Model):
    """Who sees which address: per block, the first active matching rule by priority wins.

    Order is (priority, id): lower priority first. Only the fields of the rule's
    kind (and dynamic mode) are set; the others are None.
    """

    __table_args__ = (Index("ix_rule_account_priority", "account_id", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    active: Mapped[bool] = mapped_column(default=True, nullable=False)
    priority: Mapped[int] = mapped_column(default=0, nullable=False)
    # True: all visitors; False: every one of `conditions` must hold.
    match_all: Mapped[bool] = mapped_column(default=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    dynamic_mode: Mapped[str | None] = mapped_column(String(16))
    # static: the address everyone in the segment sees.
    static_address: Mapped[str | None] = mapped_column(String(320))
    # subaddress: local@domain, shown as local+TOKEN@domain.
    base_address: Mapped[str | None] = mapped_column(String(320))
    # catchall: an ASCII domain, shown as TOKEN@domain.
    catchall_domain: Mapped[str | None] = mapped_column(String(253))
    # pool: how long an address stays with a visitor after their last activity,
    # and what to show when every pool address is taken.
    reservation_minutes: Mapped[int] = mapped_column(
        default=DEFAULT_RESERVATION_MINUTES, nullable=False
    )
    fallback_address: Mapped[str | None] = mapped_column(String(320))

    blocks: Mapped[list[Block]] = relationship(
        secondary=rule_block, back_populates="rules", order_by="Block.name"
    )
    conditions: Mapped[list["RuleCondition"]] = relationship(
        back_populates="rule",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="RuleCondition.position",
    )
    pool_addresses: Mapped[list["PoolAddress"]] = relationship(
        back_populates="rule",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="PoolAddress.position",
    )

    @property
    def block_ids(self):
        return [block.id for block in self.blocks]

    @property
    def mode(self):
        """static, subaddress, catchall or pool."""
        return self.kind if self.kind == "static" else self.dynamic_mode

    @property
    def pool_values(self):
        return [row.address for row in self.pool_addresses]

    @property
    def addresses(self):
        """Every address (or *@domain) this rule can show, for search and warnings."""
        if self.kind == "static":
            return [self.static_address]
        fallback = [self.fallback_address] if self.fallback_address else []
        if self.dynamic_mode == "subaddress":
            return [self.base_address, *fallback]
        if self.dynamic_mode == "catchall":
            return [f"*@{self.catchall_domain}", *fallback]
        return self.pool_values + fallback


class RuleCondition(AccountOwned, db.Model):
    """One condition of a rule's segment (see tracker.segments)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rule.id", ondelete="CASCADE"), index=True, nullable=False
    )
    position: Mapped[int] = mapped_column(default=0, nullable=False)
    field: Mapped[str] = mapped_column(String(32), nullable=False)
    operator: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[str] = mapped_column(String(500), default="", nullable=False)

    rule: Mapped[Rule] = relationship(back_populates="conditions")


class PoolAddress(AccountOwned, db.Model):
    """A real address of a dynamic rule's pool, leased to one visitor at a time.

    An address belongs to at most one pool of the account, so that an email to it
    points at one rule.
    """

    __table_args__ = (UniqueConstraint("account_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rule.id", ondelete="CASCADE"), index=True, nullable=False
    )
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    position: Mapped[int] = mapped_column(default=0, nullable=False)

    rule: Mapped[Rule] = relationship(back_populates="pool_addresses")


class PoolUsage(AccountOwned, db.Model):
    """How a pool rule's addresses were used on one day (in the account's time zone).

    Counted from the stored leases and fallback assignments, so it counts visits,
    not page views: the most leases held at once against the pool's size, the
    visits that got a pool address, and the (non-bot) visits that got the fallback.
    """

    __table_args__ = (UniqueConstraint("rule_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rule.id", ondelete="CASCADE"), nullable=False
    )
    day: Mapped[date] = mapped_column(nullable=False)
    pool_size: Mapped[int] = mapped_column(default=0, nullable=False)
    peak_leases: Mapped[int] = mapped_column(default=0, nullable=False)
    leased_visits: Mapped[int] = mapped_column(default=0, nullable=False)
    fallback_visits: Mapped[int] = mapped_column(default=0, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(nullable=False)
