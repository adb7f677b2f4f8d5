"""replies by the Message-ID they answer: an email arriving after its reply finds it

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 22:45:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.create_index('ix_email_account_in_reply_to', ['account_id', 'in_reply_to'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.drop_index('ix_email_account_in_reply_to')
