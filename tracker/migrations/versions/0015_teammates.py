"""teammates: memberships (a person's role in each account) and invitations

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 23:00:00

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'membership',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('account_id', 'user_id', name='uq_membership_account_user'),
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_user_id'), ['user_id'], unique=False)

    op.create_table(
        'invitation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('invited_by', sa.Integer(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('accepted_at', sa.DateTime(), nullable=True),
        sa.Column('accepted_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['invited_by'], ['user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['accepted_by'], ['user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invitation_invited_by'), ['invited_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_invitation_accepted_by'), ['accepted_by'], unique=False)

    # Every existing user becomes the owner of the account they belonged to.
    connection = op.get_bind()
    user = sa.table('user', sa.column('id', sa.Integer()), sa.column('account_id', sa.Integer()))
    membership = sa.table('membership', sa.column('account_id', sa.Integer()),
                          sa.column('user_id', sa.Integer()), sa.column('role', sa.String()),
                          sa.column('created_at', sa.DateTime()))
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = connection.execute(sa.select(user.c.id, user.c.account_id).order_by(user.c.id)).all()
    if rows:
        connection.execute(membership.insert(), [
            {'account_id': account_id, 'user_id': user_id, 'role': 'owner', 'created_at': now}
            for user_id, account_id in rows
        ])


def downgrade():
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitation_accepted_by'))
        batch_op.drop_index(batch_op.f('ix_invitation_invited_by'))
        batch_op.drop_index(batch_op.f('ix_invitation_account_id'))
    op.drop_table('invitation')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_user_id'))
        batch_op.drop_index(batch_op.f('ix_membership_account_id'))
    op.drop_table('membership')
