"""The worker class for `rq worker --worker-class tracker.jobs.worker.Worker`.

Workers outlive a Redis restart: their connection (and that of their work horses and
scheduler) retries every command with back-off until Redis answers again, where a
plain rq worker quits with "unhandled exception". `rq cron` gets the same with
`--connection-class tracker.jobs.worker.PatientRedis`.
"""

import logging
import os
import socket

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry
from rq import Worker as BaseWorker

logger = logging.getLogger(__name__)

# Jobs that can wait a moment when page views need the CPU (each job runs in a work
# horse process of its own, so the lower priority ends with it).
BACKGROUND_JOBS = {"tracker.jobs.pageviews.write_pageviews"}
NICENESS = 10
# Between tries while Redis is away: 0.5 s, doubling, at most 5 s apart, for ever.
RECONNECT_BASE, RECONNECT_CAP = 0.5, 5.0
RETRIED = (ConnectionError, TimeoutError, socket.timeout)


class _LoggedRetry(Retry):
    """Retry for ever, saying so in the log (the first failure, then every 20th)."""

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        failures = 0

        def logged(error, *count):
            nonlocal failures
            failures += 1
            if failures % 20 == 1:
                logger.warning("Redis unavailable (%s); trying again until it answers", error)
            return fail(error, *count)

        return super().call_with_retry(do, logged, is_retryable, with_failure_count)


def reconnecting_retry():
    return _LoggedRetry(ExponentialWithJitterBackoff(base=RECONNECT_BASE, cap=RECONNECT_CAP),
                        retries=-1, supported_errors=RETRIED)


class PatientRedis(Redis):
    """A Redis client whose commands wait through a Redis outage (retried for ever)."""

    @classmethod
    def from_url(cls, url, **kwargs):
        kwargs.setdefault("retry", reconnecting_retry())
        kwargs.setdefault("retry_on_error", list(RETRIED))
        return super().from_url(url, **kwargs)

    def __init__(self, *args, **kwargs):
        if kwargs.get("connection_pool") is None:
            kwargs.setdefault("retry", reconnecting_retry())
            kwargs.setdefault("retry_on_error", list(RETRIED))
        super().__init__(*args, **kwargs)


def patient(connection):
    """Make `connection` (a redis-py client) wait for Redis: every connection of its pool,
    and so every queue, job and registry that shares it, retries with back-off for ever."""
    if connection is None or isinstance(connection, PatientRedis):
        return connection
    pool = connection.connection_pool
    pool.connection_kwargs.update(retry=reconnecting_retry(), retry_on_error=list(RETRIED))
    pool.disconnect()
    pool.reset()  # connections made from now on carry the retry
    return connection


class Worker(BaseWorker):
    """An rq worker that imports the jobs and builds the app once, before it forks.

    A plain rq worker forks a work horse per job, and each horse would import the
    package and build the app again (about a second): far more than a sync that finds
    no new mail costs. Built here, every horse inherits them. No connection is opened
    before the fork: the database engine and Redis connect lazily in the horse.
    """

    def __init__(self, queues, *args, connection=None, **kwargs):
        super().__init__(queues, *args, connection=patient(connection), **kwargs)

    def work(self, *args, **kwargs):
        import tracker.jobs.pageviews  # noqa: F401  (the job functions)
        import tracker.jobs.sync  # noqa: F401
        from tracker import imap
        from tracker.jobs import _worker_app

        app = _worker_app()
        # Loading the system CA certificates takes tens of milliseconds: once, here.
        imap.ssl_context(app.config["IMAP_CA_FILE"])
        return super().work(*args, **kwargs)

    def main_work_horse(self, job, queue):
        if job.func_name in BACKGROUND_JOBS:
            os.nice(NICENESS)
        return super().main_work_horse(job, queue)
