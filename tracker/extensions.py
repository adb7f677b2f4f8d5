"""Flask extensions, created unbound and initialised in the app factory."""

import sqlite3

from flask import current_app
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from redis import Redis
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

# Named constraints so that migrations can alter them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class _SQLAlchemy(SQLAlchemy):
    def _teardown_session(self, exc):
        # Most page views never open a session; removing none would raise and
        # swallow a KeyError at the end of each of them.
        if self.session.registry.has():
            super()._teardown_session(exc)


db = _SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = Htmx()

# One client (a connection pool) per Redis URL and process: a connection per request
# costs more than the rest of a page view's Redis work. redis-py resets the pool
# after a fork, so forked workers get their own connections.
_redis_clients = {}


def redis_client(single=False):
    """The process's Redis client for the app's REDIS_URL.

    single: a client on one connection of its own (thread-safe, commands take turns),
    for the page-view API: taking a connection from a pool and checking it costs as
    much CPU as the rest of a page view's round trip.
    """
    key = (current_app.config["REDIS_URL"], single)
    if key not in _redis_clients:
        _redis_clients[key] = Redis.from_url(key[0], single_connection_client=single)
    return _redis_clients[key]


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: enforce foreign keys, let web and workers share the file.

    WAL with synchronous=NORMAL: a commit does not wait for fsync (a power cut may
    lose the last transactions, never consistency), which keeps the write lock short.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()
        # SQLite's lower() (and so ILIKE) folds ASCII only; Russian names need Unicode.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value):
    return value.lower() if isinstance(value, str) else value
