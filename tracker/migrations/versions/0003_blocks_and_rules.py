"""blocks and rules: block (+ its sites and find-in-code addresses), rule (+ its blocks,
segment conditions and pool addresses)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 11:03:39.679388

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('block',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('placement', sa.String(length=16), nullable=False),
    sa.Column('attribute_kind', sa.String(length=16), nullable=True),
    sa.Column('attribute_name', sa.String(length=100), nullable=True),
    sa.Column('attribute_value', sa.String(length=500), nullable=True),
    sa.Column('selector', sa.String(length=1000), nullable=True),
    sa.Column('replace_address', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_block_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_block'))
    )
    with op.batch_alter_table('block', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_block_account_id'), ['account_id'], unique=False)

    op.create_table('rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('match_all', sa.Boolean(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('dynamic_mode', sa.String(length=16), nullable=True),
    sa.Column('static_address', sa.String(length=320), nullable=True),
    sa.Column('base_address', sa.String(length=320), nullable=True),
    sa.Column('catchall_domain', sa.String(length=253), nullable=True),
    sa.Column('reservation_minutes', sa.Integer(), nullable=False),
    sa.Column('fallback_address', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_rule_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule'))
    )
    with op.batch_alter_table('rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_rule_account_priority', ['account_id', 'priority'], unique=False)

    op.create_table('block_address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('block_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_block_address_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['block_id'], ['block.id'], name=op.f('fk_block_address_block_id_block'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_block_address')),
    sa.UniqueConstraint('block_id', 'address', name=op.f('uq_block_address_block_id_address'))
    )
    with op.batch_alter_table('block_address', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_block_address_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_block_address_block_id'), ['block_id'], unique=False)

    op.create_table('block_site',
    sa.Column('block_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['block_id'], ['block.id'], name=op.f('fk_block_site_block_id_block'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_block_site_site_id_site'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('block_id', 'site_id', name=op.f('pk_block_site'))
    )
    with op.batch_alter_table('block_site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_block_site_site_id'), ['site_id'], unique=False)

    op.create_table('pool_address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_pool_address_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rule.id'], name=op.f('fk_pool_address_rule_id_rule'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_address')),
    sa.UniqueConstraint('account_id', 'address', name=op.f('uq_pool_address_account_id_address'))
    )
    with op.batch_alter_table('pool_address', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pool_address_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pool_address_rule_id'), ['rule_id'], unique=False)

    op.create_table('rule_block',
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('block_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['block_id'], ['block.id'], name=op.f('fk_rule_block_block_id_block'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rule.id'], name=op.f('fk_rule_block_rule_id_rule'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rule_id', 'block_id', name=op.f('pk_rule_block'))
    )
    with op.batch_alter_table('rule_block', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_block_block_id'), ['block_id'], unique=False)

    op.create_table('rule_condition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.Column('operator', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_rule_condition_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['rule.id'], name=op.f('fk_rule_condition_rule_id_rule'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_condition'))
    )
    with op.batch_alter_table('rule_condition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_condition_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rule_condition_rule_id'), ['rule_id'], unique=False)



def downgrade():
    with op.batch_alter_table('rule_condition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_condition_rule_id'))
        batch_op.drop_index(batch_op.f('ix_rule_condition_account_id'))

    op.drop_table('rule_condition')
    with op.batch_alter_table('rule_block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_block_block_id'))

    op.drop_table('rule_block')
    with op.batch_alter_table('pool_address', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pool_address_rule_id'))
        batch_op.drop_index(batch_op.f('ix_pool_address_account_id'))

    op.drop_table('pool_address')
    with op.batch_alter_table('block_site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_block_site_site_id'))

    op.drop_table('block_site')
    with op.batch_alter_table('block_address', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_block_address_block_id'))
        batch_op.drop_index(batch_op.f('ix_block_address_account_id'))

    op.drop_table('block_address')
    with op.batch_alter_table('rule', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_account_priority')
        batch_op.drop_index(batch_op.f('ix_rule_account_id'))

    op.drop_table('rule')
    with op.batch_alter_table('block', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_block_account_id'))

    op.drop_table('block')
