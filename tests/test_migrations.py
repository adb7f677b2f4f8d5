"""Migrations build the same schema as the models, and go down and up again."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect

from tracker import create_app
from tracker.extensions import db


def migrated_app(app_config, empty_database_url):
    """The app on an empty database (SQLite or PostgreSQL, see --db) for migrating."""
    return create_app(dict(app_config, DATABASE_URL=empty_database_url))


def driver_sql(connection):
    """connection.exec_driver_sql taking ? placeholders on every backend."""
    qmark = connection.dialect.paramstyle == "qmark"

    def run(sql, parameters=()):
        return connection.exec_driver_sql(sql if qmark else sql.replace("?", "%s"), parameters)

    return run


def seed_account(run):
    """An account with a site (5), a mailbox (1) and a visit (7), as rows of any release."""
    run("INSERT INTO account (id, name, created_at) VALUES (1, 'A', '2026-11-01')")
    run("INSERT INTO site (id, account_id, name, key, created_at) "
        "VALUES (5, 1, 'Shop', 'k', '2026-11-01')")
    run("INSERT INTO credential (id, account_id, name, protocol, service, host, port, "
        "security, login, password_token, created_at) VALUES (1, 1, 'c', 'imap', "
        "'other', 'imap.example.com', 993, 'ssl', 'box@example.com', 't', '2026-11-01')")
    run("INSERT INTO mailbox (id, account_id, credential_id, active, "
        "repeat_period_seconds, repeat_period_unit, created_at) "
        "VALUES (1, 1, 1, TRUE, 86400, 'days', '2026-11-01')")
    run("INSERT INTO visit (id, account_id, site_id, visitor_id, client_visit_id, "
        "started_at, last_seen_at, landing_url, referrer, utm_source, utm_medium, "
        "utm_campaign, utm_content, utm_term, channel, ga_client_id, ym_client_id, "
        "user_agent, is_bot, page_views, created_at) VALUES (7, 1, 5, 'v', 'cv', "
        "'2026-11-01', '2026-11-01', '', '', 'google', 'cpc', '', '', '', 'paid', '', "
        "'', '', FALSE, 1, '2026-11-01')")


def test_upgrade_matches_models(app_config, empty_database_url):
    app = migrated_app(app_config, empty_database_url)
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            diff = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_up_again(app_config, empty_database_url):
    app = migrated_app(app_config, empty_database_url)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        engine = create_engine(url)
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        engine.dispose()
        upgrade()
        db.engine.dispose()
    engine = create_engine(url)
    assert {"account", "user", "site", "site_domain"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_upgrade_from_the_previous_release_fills_the_report_columns(app_config, empty_database_url):
    """Emails stored before 0008 get their search text, and attributed ones their channel,
    utm_source and site from the visit."""
    app = migrated_app(app_config, empty_database_url)
    with app.app_context():
        upgrade(revision="0007")
        with db.engine.begin() as connection:
            run = driver_sql(connection)
            seed_account(run)
            email = ("INSERT INTO email (account_id, mailbox_id, folder, uidvalidity, uid, "
                     "fingerprint, internaldate, from_name, recipients, subject, counted, "
                     "visit_id, source, created_at) VALUES (1, 1, 'INBOX', 1, ?, ?, "
                     "'2026-11-02', 'Иван', '[]', 'Прайс-ЛИСТ', TRUE, ?, ?, '2026-11-02')")
            run(email, (1, "f1", 7, '{"channel": "paid", "utm_source": "google"}'))
            run(email, (2, "f2", None, None))
        upgrade()
        with db.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT channel, utm_source, site_id, search_text FROM email ORDER BY uid").all()
            zone = connection.exec_driver_sql("SELECT timezone FROM account").scalar()
        db.engine.dispose()
    assert rows == [("paid", "google", 5, "прайс-лист\nиван\n"), (None, None, None,
                                                                  "прайс-лист\nиван\n")]
    assert zone == "UTC"


def test_upgrade_to_0009_marks_pool_emails_that_came_after_their_lease(app_config, empty_database_url):
    app = migrated_app(app_config, empty_database_url)
    with app.app_context():
        upgrade(revision="0008")
        with db.engine.begin() as connection:
            run = driver_sql(connection)
            seed_account(run)
            run("INSERT INTO assignment (account_id, site_id, visit_id, kind, address, "
                "assigned_at, expires_at, created_at) VALUES (1, 5, 7, 'pool', 'p1@shop.example', "
                "'2026-11-02 10:00:00', '2026-11-02 10:30:00', '2026-11-02')")
            email = ("INSERT INTO email (account_id, mailbox_id, folder, uidvalidity, uid, "
                     "fingerprint, internaldate, from_name, recipients, subject, counted, "
                     "visit_id, attribution, tracked_address, created_at) VALUES (1, 1, 'INBOX', "
                     "1, ?, ?, ?, '', '[]', '', TRUE, 7, ?, ?, '2026-11-02')")
            run(email, (1, "held", "2026-11-02 10:20:00", "pool", "p1@shop.example"))
            run(email, (2, "late", "2026-11-02 12:30:00", "pool", "p1@shop.example"))
            run(email, (3, "static", "2026-11-02 12:30:00", "static", "info@shop.example"))
        upgrade()
        with db.engine.connect() as connection:
            marks = connection.exec_driver_sql(
                "SELECT fingerprint, uncertain FROM email ORDER BY uid").all()
        db.engine.dispose()
    assert marks == [("held", None), ("late", "lease_ended"), ("static", None)]


def test_upgrade_to_0010_keeps_emails_and_adds_empty_thread_columns(app_config, empty_database_url):
    app = migrated_app(app_config, empty_database_url)
    with app.app_context():
        upgrade(revision="0009")
        with db.engine.begin() as connection:
            run = driver_sql(connection)
            seed_account(run)
            email = ("INSERT INTO email (account_id, mailbox_id, folder, uidvalidity, uid, "
                     "message_id, fingerprint, internaldate, from_name, recipients, subject, "
                     "counted, visit_id, attribution, tracked_address, created_at) VALUES "
                     "(1, 1, 'INBOX', 1, ?, ?, ?, '2026-11-02 10:20:00', '', '[]', '', TRUE, 7, "
                     "'static', 'info@shop.example', '2026-11-02')")
            run(email, (1, "a@x", "a@x"))
            run(email, (2, "b@x", "b@x"))
        upgrade()
        with db.engine.begin() as connection:
            run = driver_sql(connection)
            rows = run("SELECT uid, message_id, visit_id, in_reply_to, reference_ids, thread_of "
                       "FROM email ORDER BY uid").all()
            run("UPDATE email SET thread_of = (SELECT id FROM email WHERE uid = 1), "
                "in_reply_to = 'a@x', reference_ids = '[\"a@x\"]' WHERE uid = 2")
        with db.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys = ON")
            connection.exec_driver_sql("DELETE FROM email WHERE uid = 1")
            left = connection.exec_driver_sql(
                "SELECT uid, in_reply_to, thread_of FROM email").all()
        downgrade(revision="0009")
        with db.engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("email")}
        db.engine.dispose()
    assert rows == [(1, "a@x", 7, None, None, None), (2, "b@x", 7, None, None, None)]
    # Deleting the earlier email leaves its reply, no longer pointing at it.
    assert left == [(2, "a@x", None)]
    assert not {"in_reply_to", "reference_ids", "thread_of"} & columns
