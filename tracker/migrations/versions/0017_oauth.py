"""oauth: credentials signed in with an OAuth provider (encrypted refresh and access tokens)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 23:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oauth_provider', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('refresh_token_token', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('access_token_token', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('access_token_expires_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('oauth_revoked_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.drop_column('oauth_revoked_at')
        batch_op.drop_column('access_token_expires_at')
        batch_op.drop_column('access_token_token')
        batch_op.drop_column('refresh_token_token')
        batch_op.drop_column('oauth_provider')
