"""RQ jobs: importable functions that take ids and build the app context they need."""

from functools import cache

from flask import current_app, has_app_context
from rq import Queue

from tracker.extensions import redis_client


@cache
def _worker_app():
    """One app per worker process, built on first use (never at import time)."""
    from tracker import create_app

    return create_app()


def app_context():
    """The app context a job runs in: the caller's if any, else the worker's own."""
    if has_app_context():
        return current_app.app_context()
    return _worker_app().app_context()


def redis_connection():
    """The process's Redis client (shared with the web views)."""
    return redis_client()


def queue():
    """The RQ queue the app enqueues to."""
    return Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())
