"""ingest cursor: how far the page-view queue has been written

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 13:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ingest_cursor',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('last_id', sa.String(length=40), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_ingest_cursor')),
    )


def downgrade():
    op.drop_table('ingest_cursor')
