"""RQ jobs for the reports: pool usage per rule and day, recounted from the stored leases."""

import logging

from tracker.jobs import app_context
from tracker.reports import pools

logger = logging.getLogger(__name__)


def record_pool_usage(days=2):
    """Recount the last `days` local days of every pool rule; returns the rows written.

    Safe to run twice, or twice at once: each run recomputes the days from the
    Assignment rows and upserts them.
    """
    with app_context():
        written = pools.record_usage(days=days)
        if written:
            logger.info("Recorded %d days of pool usage", written)
        return written
