"""RQ jobs of the webhooks: one delivery attempt, its retries, and the sweep of lost jobs.

- Each attempt is a job `deliver(delivery_id)`. A failure schedules the next one
  with `enqueue_in` (the workers run with --with-scheduler) after the back-off that
  tracker.integrations.webhooks computed.
- Deliveries live in the database first (tracker.integrations.webhooks): the jobs
  only carry their id. A job lost with Redis or a killed worker is found by the
  sweep (rq cron, every minute) and queued again, so every event goes out at
  least once. A Redis lock per delivery and its state keep two jobs for the same
  delivery from both sending it.
"""

import logging
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import delete, select

from tracker.extensions import db
from tracker.integrations import webhooks
from tracker.jobs import app_context, redis_connection
from tracker.models import Webhook, WebhookAttempt, WebhookDelivery, utcnow

logger = logging.getLogger(__name__)

# The delivery log keeps this many attempts per URL.
ATTEMPTS_KEPT = 500
# Delivered, failed and cancelled deliveries are deleted after this many days.
DELIVERIES_KEPT_DAYS = 30


def _queue():
    return Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())


def enqueue_delivery(delivery_id, delay=0):
    """Queue an attempt now, or in `delay` seconds (the scheduler moves it to the queue)."""
    timeout = webhooks.setting("WEBHOOK_TIMEOUT_SECONDS")
    options = {"job_timeout": int(timeout * 2 + 30), "result_ttl": 600,
               "failure_ttl": 7 * 86400, "description": f"webhook delivery {delivery_id}"}
    queue = _queue()
    if delay and delay > 0:
        return queue.enqueue_in(timedelta(seconds=delay), deliver, delivery_id, **options)
    return queue.enqueue(deliver, delivery_id, **options)


def enqueue_all(delivery_ids):
    """Queue each delivery; without Redis the sweep queues them later. Returns how many went."""
    queued = 0
    for delivery_id in delivery_ids:
        try:
            enqueue_delivery(delivery_id)
            queued += 1
        except RedisError:
            logger.warning("Redis unavailable: webhook delivery %s left to the sweep",
                           delivery_id)
            break
    return queued


def deliver(delivery_id):
    """Job: one attempt of a delivery; schedules the next on failure. Returns its outcome."""
    with app_context():
        timeout = webhooks.setting("WEBHOOK_TIMEOUT_SECONDS")
        lock = redis_connection().lock(f"tracker:webhook-delivery:{delivery_id}",
                                       timeout=int(timeout + 120))
        if not lock.acquire(blocking=False):
            return "busy"  # another job is sending it right now
        try:
            delay = webhooks.attempt(delivery_id)
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: nothing to release
                pass
        delivery = db.session.get(WebhookDelivery, delivery_id)
        if delay is not None:
            enqueue_delivery(delivery_id, delay)
            return f"retry in {delay:g} s"
        return delivery.state if delivery is not None else "deleted"


def sweep():
    """rq cron, every minute: queue lost deliveries again; trim the logs. Returns ids queued."""
    with app_context():
        now = utcnow()
        ids = webhooks.pending_overdue(now)
        queued = ids[:enqueue_all(ids)]
        _trim(now)
        db.session.commit()
        return queued


def _trim(now):
    cutoff = now - timedelta(days=DELIVERIES_KEPT_DAYS)
    db.session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.state != "pending", WebhookDelivery.created_at < cutoff))
    for webhook_id in db.session.scalars(select(Webhook.id)):
        oldest_kept = db.session.scalar(
            select(WebhookAttempt.id).where(WebhookAttempt.webhook_id == webhook_id)
            .order_by(WebhookAttempt.id.desc()).offset(ATTEMPTS_KEPT - 1).limit(1))
        if oldest_kept is not None:
            db.session.execute(delete(WebhookAttempt).where(
                WebhookAttempt.webhook_id == webhook_id, WebhookAttempt.id < oldest_kept))


def on_emails_committed(app, mailbox, email_ids):
    """The sync's emails_committed signal: an event per stored email for the account's URLs.

    Runs after the batch committed, so the emails are counted and attributed. A
    failure here is logged and never fails the sync.
    """
    try:
        deliveries = webhooks.create_deliveries(mailbox.account_id, email_ids)
        if not deliveries:
            return
        ids = [d.id for d in deliveries]
        db.session.commit()
    except Exception:
        db.session.rollback()
        logger.exception("Webhook events of mailbox %s not created", mailbox.id)
        return
    enqueue_all(ids)
