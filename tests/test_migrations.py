"""Migrations build the same schema as the models, and go down and up again."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect

from tracker import create_app
from tracker.extensions import db


def migrated_app(app_config, tmp_path):
    app_config = dict(app_config, DATABASE_URL=f"sqlite:///{tmp_path / 'migrated.sqlite3'}")
    return create_app(app_config)


def test_upgrade_matches_models(app_config, tmp_path):
    app = migrated_app(app_config, tmp_path)
    with app.app_context():
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            diff = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_up_again(app_config, tmp_path):
    app = migrated_app(app_config, tmp_path)
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
