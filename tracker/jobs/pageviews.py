"""The RQ job that writes queued page views to the database (see tracker.ingest).

A page view that finds no writer at work wakes one (`wake_writer`): the first
entry after a writer finished sets the wake-up flag. The writer then writes
what has queued every WRITE_INTERVAL seconds, so that busy traffic is written
in large batches by one job instead of a job per handful of entries, and stops
after a round that found nothing or after MAX_SECONDS (so that sync jobs queued
behind it get their turn; the next page view wakes another writer). The cron
also runs one every minute, in case a wake-up was lost. Workers of
tracker.jobs.worker.Worker run it at a lower CPU priority than the web processes.
"""

import logging
import time

from tracker import ingest, visitstate
from tracker.jobs import app_context, queue, redis_connection

logger = logging.getLogger(__name__)

WRITE_INTERVAL = 1.0
MAX_SECONDS = 20
# A writer that finds another one busy waits this long for it, then leaves it the work.
WAIT_SECONDS = 5


def write_pageviews(interval=WRITE_INTERVAL, max_seconds=MAX_SECONDS):
    """Write what is queued, in rounds, while more keeps coming; returns the entries written."""
    with app_context():
        redis = redis_connection()
        deadline = time.monotonic() + max_seconds
        total = 0
        while True:
            written = ingest.flush(redis, wait=WAIT_SECONDS)
            if written is None:  # another writer is at work: it takes over
                return total
            total += written
            if not written or time.monotonic() + interval > deadline:
                break
            # Still awake: page views meanwhile need not wake anyone.
            redis.pexpire(visitstate.FLAG, visitstate.FLAG_TTL_MS)
            time.sleep(interval)
        # From now on the next entry wakes a writer; what came before this is written here.
        redis.delete(visitstate.FLAG)
        total += ingest.flush(redis, wait=WAIT_SECONDS) or 0
        if total:
            logger.info("Wrote %d queued page-view entries", total)
        return total


def wake_writer():
    """Queue a writer (called by the web app when the first entry meets an idle queue)."""
    queue().enqueue(write_pageviews, result_ttl=0, failure_ttl=24 * 3600,
                    description="write queued page views")
