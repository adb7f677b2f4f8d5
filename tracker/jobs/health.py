"""A heartbeat job: proves that workers run and reach the database and Redis."""

from sqlalchemy import func, select

from tracker.extensions import db
from tracker.jobs import app_context, redis_connection
from tracker.models import Account, utcnow

HEARTBEAT_KEY = "tracker:heartbeat"


def heartbeat():
    """Record when a worker last ran; return the number of accounts it sees."""
    with app_context():
        redis_connection().set(HEARTBEAT_KEY, utcnow().isoformat())
        return db.session.scalar(select(func.count()).select_from(Account))
