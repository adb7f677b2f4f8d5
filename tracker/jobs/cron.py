"""Periodic jobs, registered once for `rq cron tracker.jobs.cron`."""

import os

from rq import cron

from tracker.jobs.health import heartbeat

QUEUE = os.environ.get("RQ_QUEUE", "default")

cron.register(heartbeat, queue_name=QUEUE, interval=60)
