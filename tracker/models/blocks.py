"""Blocks: the places on a site where a tracked address is shown."""

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker.extensions import db
from tracker.models.base import AccountOwned
from tracker.models.sites import Site

PLACEMENTS = ("code", "element")

block_site = Table(
    "block_site",
    db.metadata,
    Column("block_id", ForeignKey("block.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("site.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Block(AccountOwned, db.Model):
    """Where an address sits on the pages of one or more sites.

    placement "code": the script looks for `addresses` in page text and mailto: links;
    placement "element": the script finds `selector` (built from the attribute
    parts) and replaces `replace_address` inside it, or the element's whole text.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    placement: Mapped[str] = mapped_column(String(16), nullable=False)
    # id, class or other (then attribute_name says which attribute).
    attribute_kind: Mapped[str | None] = mapped_column(String(16))
    attribute_name: Mapped[str | None] = mapped_column(String(100))
    attribute_value: Mapped[str | None] = mapped_column(String(500))
    selector: Mapped[str | None] = mapped_column(String(1000))
    replace_address: Mapped[str | None] = mapped_column(String(320))

    sites: Mapped[list[Site]] = relationship(secondary=block_site, order_by="Site.name")
    addresses: Mapped[list["BlockAddress"]] = relationship(
        back_populates="block",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="BlockAddress.position",
    )
    rules: Mapped[list["Rule"]] = relationship(  # noqa: F821
        secondary="rule_block", back_populates="blocks", order_by="(Rule.priority, Rule.id)"
    )

    @property
    def address_values(self):
        return [row.address for row in self.addresses]

    @property
    def site_ids(self):
        return [site.id for site in self.sites]


class BlockAddress(AccountOwned, db.Model):
    """An address as it appears on the site, for a "find in code" block."""

    __table_args__ = (UniqueConstraint("block_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    block_id: Mapped[int] = mapped_column(
        ForeignKey("block.id", ondelete="CASCADE"), index=True, nullable=False
    )
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    position: Mapped[int] = mapped_column(default=0, nullable=False)

    block: Mapped[Block] = relationship(back_populates="addresses")
