"""reports: account time zone, recipients by header, report columns and indexes, pool usage

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 20:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='UTC',
                                      nullable=False))

    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipient_fields', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('channel', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('utm_source', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('search_text', sa.String(length=600), server_default='',
                                      nullable=False))
        batch_op.drop_index('ix_email_mailbox_id_pair')
        batch_op.create_index('ix_email_mailbox_id_pair',
                              ['mailbox_id', 'from_address', 'recipient', 'internaldate'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_email_site_id_site'), 'site', ['site_id'],
                                    ['id'], ondelete='SET NULL')
        batch_op.create_index('ix_email_account_time',
                              ['account_id', 'internaldate', 'id', 'search_text'], unique=False)
        batch_op.create_index('ix_email_account_channel_time',
                              ['account_id', 'channel', 'internaldate'], unique=False)
        batch_op.create_index('ix_email_account_utm_source_time',
                              ['account_id', 'utm_source', 'internaldate'], unique=False)
        batch_op.create_index('ix_email_site_time', ['site_id', 'internaldate'], unique=False)

    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index('ix_assignment_rule_kind_time', ['rule_id', 'kind', 'assigned_at'],
                              unique=False)

    op.create_table(
        'pool_usage',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('pool_size', sa.Integer(), nullable=False),
        sa.Column('peak_leases', sa.Integer(), nullable=False),
        sa.Column('leased_visits', sa.Integer(), nullable=False),
        sa.Column('fallback_visits', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'],
                                name=op.f('fk_pool_usage_account_id_account'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['rule_id'], ['rule.id'],
                                name=op.f('fk_pool_usage_rule_id_rule'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_usage')),
        sa.UniqueConstraint('rule_id', 'day', name=op.f('uq_pool_usage_rule_id_day')),
    )
    with op.batch_alter_table('pool_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pool_usage_account_id'), ['account_id'], unique=False)

    _backfill_report_columns()
    _backfill_search_text()


def _backfill_report_columns():
    """Emails attributed before this release: channel, utm_source and site from their source."""
    connection = op.get_bind()
    email = sa.table('email', sa.column('id', sa.Integer), sa.column('source', sa.JSON),
                     sa.column('visit_id', sa.Integer), sa.column('channel', sa.String),
                     sa.column('utm_source', sa.String), sa.column('site_id', sa.Integer))
    visit = sa.table('visit', sa.column('id', sa.Integer), sa.column('site_id', sa.Integer))
    rows = connection.execute(
        sa.select(email.c.id, email.c.source, visit.c.site_id)
        .select_from(email.outerjoin(visit, visit.c.id == email.c.visit_id))
        .where(email.c.source.is_not(None))
    ).all()
    updates = [
        {"eid": row.id, "c": (row.source or {}).get("channel") or None,
         "u": ((row.source or {}).get("utm_source") or "")[:200] or None, "s": row.site_id}
        for row in rows if isinstance(row.source, dict)
    ]
    if updates:
        connection.execute(
            email.update().where(email.c.id == sa.bindparam("eid"))
            .values(channel=sa.bindparam("c"), utm_source=sa.bindparam("u"),
                    site_id=sa.bindparam("s")),
            updates,
        )


def _backfill_search_text():
    """search_text of every stored email, as tracker.models.emails.search_text makes it
    (written out here: a migration must not change when the app's code does)."""
    connection = op.get_bind()
    email = sa.table('email', sa.column('id', sa.Integer), sa.column('subject', sa.String),
                     sa.column('from_name', sa.String), sa.column('from_address', sa.String),
                     sa.column('search_text', sa.String))
    last = 0
    while True:
        rows = connection.execute(
            sa.select(email.c.id, email.c.subject, email.c.from_name, email.c.from_address)
            .where(email.c.id > last).order_by(email.c.id).limit(5000)
        ).all()
        if not rows:
            return
        connection.execute(
            email.update().where(email.c.id == sa.bindparam("eid"))
            .values(search_text=sa.bindparam("t")),
            [{"eid": row.id, "t": "\n".join(part or "" for part in row[1:]).casefold()
              .encode()[:600].decode(errors="ignore")} for row in rows],
        )
        last = rows[-1].id


def downgrade():
    with op.batch_alter_table('pool_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pool_usage_account_id'))
    op.drop_table('pool_usage')

    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_assignment_rule_kind_time')

    with op.batch_alter_table('email', schema=None) as batch_op:
        batch_op.drop_index('ix_email_site_time')
        batch_op.drop_index('ix_email_account_utm_source_time')
        batch_op.drop_index('ix_email_account_channel_time')
        batch_op.drop_index('ix_email_account_time')
        batch_op.drop_constraint(batch_op.f('fk_email_site_id_site'), type_='foreignkey')
        batch_op.drop_index('ix_email_mailbox_id_pair')
        batch_op.create_index('ix_email_mailbox_id_pair',
                              ['mailbox_id', 'from_address', 'recipient'], unique=False)
        batch_op.drop_column('search_text')
        batch_op.drop_column('site_id')
        batch_op.drop_column('utm_source')
        batch_op.drop_column('channel')
        batch_op.drop_column('recipient_fields')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('timezone')
