"""Periodic jobs, registered once for `rq cron tracker.jobs.cron`."""

import os

from rq import cron

from tracker.jobs.health import heartbeat
from tracker.jobs.mail import sweep as sweep_mail
from tracker.jobs.pageviews import write_pageviews
from tracker.jobs.reports import record_pool_usage
from tracker.jobs.sync import dispatch_due_mailboxes
from tracker.jobs.webhooks import sweep as sweep_webhooks

QUEUE = os.environ.get("RQ_QUEUE", "default")

cron.register(heartbeat, queue_name=QUEUE, interval=60)
# Every minute: queue the mailboxes whose sync interval (SYNC_INTERVAL_SECONDS) has passed.
cron.register(dispatch_due_mailboxes, queue_name=QUEUE, interval=60)
# Every minute: write queued page views, in case a page view's wake-up was lost.
cron.register(write_pageviews, queue_name=QUEUE, interval=60)
# Every 10 minutes: pool usage per rule and day (today and yesterday) from the stored leases.
cron.register(record_pool_usage, queue_name=QUEUE, interval=600)
# Every minute: queue again the webhook deliveries whose job was lost; trim their logs.
cron.register(sweep_webhooks, queue_name=QUEUE, interval=60)
# Every 10 minutes: email whose job was lost is marked failed (its owners see it).
cron.register(sweep_mail, queue_name=QUEUE, interval=600)
