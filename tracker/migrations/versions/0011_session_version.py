"""session version: a random token per user that ends every session when it changes

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 22:15:00

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_token', sa.String(length=64), nullable=True))
    # Every existing user gets a token of their own; sessions made before this
    # revision carry no token and sign in again once.
    user = sa.table('user', sa.column('id', sa.Integer()),
                    sa.column('session_token', sa.String(length=64)))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(user.c.id)).all():
        connection.execute(user.update().where(user.c.id == user_id)
                           .values(session_token=secrets.token_urlsafe(24)))
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.alter_column('session_token', existing_type=sa.String(length=64),
                              nullable=False)


def downgrade():
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('session_token')
