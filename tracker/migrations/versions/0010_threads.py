"""threads: In-Reply-To and References of emails, the thread an email continues

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 21:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_reply_to', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('reference_ids', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('thread_of', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_email_thread_of_email'), 'email',
                                    ['thread_of'], ['id'], ondelete='SET NULL')
        batch_op.create_index(batch_op.f('ix_email_thread_of'), ['thread_of'], unique=False)
        batch_op.create_index('ix_email_account_message_id',
                              ['account_id', 'message_id', 'internaldate'], unique=False)


def downgrade():
    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.drop_index('ix_email_account_message_id')
        batch_op.drop_index(batch_op.f('ix_email_thread_of'))
        batch_op.drop_constraint(batch_op.f('fk_email_thread_of_email'), type_='foreignkey')
        batch_op.drop_column('thread_of')
        batch_op.drop_column('reference_ids')
        batch_op.drop_column('in_reply_to')
