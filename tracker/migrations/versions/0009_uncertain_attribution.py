"""uncertain attribution: why an email's visit is a guess rather than a match

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 21:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uncertain', sa.String(length=32), nullable=True))

    _backfill_lease_ended()


def _backfill_lease_ended():
    """Pool emails already given to a visit none of whose leases of the address covers the
    email's time: the visit was its last holder, the lease had ended ("lease_ended")."""
    email = sa.table('email', sa.column('id', sa.Integer), sa.column('account_id', sa.Integer),
                     sa.column('visit_id', sa.Integer), sa.column('attribution', sa.String),
                     sa.column('tracked_address', sa.String),
                     sa.column('internaldate', sa.DateTime), sa.column('uncertain', sa.String))
    assignment = sa.table('assignment', sa.column('account_id', sa.Integer),
                          sa.column('visit_id', sa.Integer), sa.column('address', sa.String),
                          sa.column('kind', sa.String), sa.column('assigned_at', sa.DateTime),
                          sa.column('expires_at', sa.DateTime))
    covering = sa.select(sa.literal(1)).where(
        assignment.c.account_id == email.c.account_id,
        assignment.c.visit_id == email.c.visit_id,
        assignment.c.address == email.c.tracked_address,
        assignment.c.kind == 'pool',
        assignment.c.assigned_at <= email.c.internaldate,
        sa.or_(assignment.c.expires_at.is_(None),
               assignment.c.expires_at >= email.c.internaldate),
    )
    op.get_bind().execute(
        email.update()
        .where(email.c.attribution == 'pool', email.c.visit_id.is_not(None),
               ~covering.exists())
        .values(uncertain='lease_ended')
    )


def downgrade():
    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.drop_column('uncertain')
