"""RQ jobs of the mailbox sync: the dispatcher run by `rq cron`, one mailbox's sync, recounts.

- A mailbox is never queued twice at once: its sync job has the id
  `sync-mailbox-<id>`, and a job with that id that is queued, running or waiting to
  retry is left alone.
- A mailbox is never synced by two workers at once: the sync holds a lease (a Redis
  lock of SYNC_LEASE_SECONDS, renewed by a thread while the sync runs; see
  tracker.jobs.lease), so a worker killed mid-sync blocks it for seconds, not for the
  job timeout. A sync that finds the mailbox locked is retried, never dropped.
- A run left "running" by a dead worker (no lease any more) is closed as
  "interrupted" by the next sync of the mailbox or by the cron's
  recover_interrupted_syncs, which queues the mailbox again; its rq job, still
  "started" in Redis, counts as dead (see job_is_dead), so "Sync now" and the
  status widget do not wait for it.
- A sync that fails for network reasons raises SyncFailed, and RQ retries it with
  the backoff of SYNC_RETRY_INTERVALS; a wrong password is recorded on the mailbox
  and not retried before the next scheduled run.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import func, or_, select, update

from tracker import counting
from tracker.extensions import db
from tracker.jobs import app_context, redis_connection
from tracker.jobs.lease import Lease
from tracker.models import Mailbox, SyncRun, utcnow
from tracker.sync import run_sync

logger = logging.getLogger(__name__)

# Job states in which a sync is still to happen or happening.
PENDING = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED,
                     JobStatus.DEFERRED})
# The dispatcher runs every minute: a mailbox due within this many seconds goes now,
# so a 10-minute interval does not drift to 11.
DISPATCH_SLACK = 30
RECOUNT_RETRY = Retry(max=10, interval=[10, 30, 60, 120, 300])


class SyncFailed(Exception):
    """A sync that may work later (network trouble, a timeout): RQ retries it."""


class MailboxBusy(Exception):
    """The mailbox is being synced: the recount waits for its turn (RQ retries it)."""


def sync_job_id(mailbox_id):
    return f"sync-mailbox-{mailbox_id}"


def lock_key(mailbox_id):
    return f"tracker:sync-lock:{mailbox_id}"


def lease_seconds():
    return current_app.config.get("SYNC_LEASE_SECONDS", 30)


def _lock(redis, mailbox_id):
    """The per-mailbox lease: held while a sync or a recount of the mailbox runs."""
    return Lease(redis, lock_key(mailbox_id), lease_seconds())


def _release(lock):
    lock.release()


def job_is_dead(job, redis, mailbox_id):
    """True for a sync job that rq still calls "started" but that no live worker runs.

    A running sync holds the mailbox's lease; a job started longer than a lease ago
    without one was left by a worker that died (killed, or its machine lost).
    """
    if job.started_at is None:
        return False
    age = (utcnow() - job.started_at.replace(tzinfo=None)).total_seconds()
    return age > lease_seconds() and not redis.exists(lock_key(mailbox_id))


def _forget_started(job, redis):
    """Take a dead job's entries out of rq's started-job registry before its id is reused:
    rq's clean-up of an entry left there would fail or requeue the new job of that id."""
    registry = StartedJobRegistry(job.origin, connection=redis)
    stale = [entry for entry in redis.zrange(registry.key, 0, -1)
             if registry.parse_job_id(entry) == job.id]
    if stale:
        redis.zrem(registry.key, *stale)


def close_interrupted_runs(mailbox_id):
    """Mark the mailbox's runs still "running" as interrupted; return how many.

    Only called while holding the mailbox's lease: then no sync of it runs, and any
    run still "running" was left by a worker that died.
    """
    closed = db.session.execute(
        update(SyncRun).where(SyncRun.mailbox_id == mailbox_id, SyncRun.status == "running")
        .values(status="interrupted", finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if closed:
        logger.warning("Mailbox %s: %d sync run(s) left by a dead worker closed as interrupted",
                       mailbox_id, closed)
    return closed


def _fetch_job(job_id, redis):
    try:
        return Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None


def _status(job):
    try:
        return job.get_status()
    except Exception:  # the hash vanished between fetch and read
        return None


def enqueue_sync(mailbox_id, *, trigger="schedule"):
    """Queue a sync of the mailbox unless one is already pending; return (job, queued now).

    "Sync now" (trigger="manual") also cuts short the wait for a scheduled retry.
    """
    config = current_app.config
    redis = redis_connection()
    job_id = sync_job_id(mailbox_id)
    # The cron dispatcher and a click must not both see "nothing pending".
    with redis.lock(f"tracker:enqueue-lock:{job_id}", timeout=30, blocking_timeout=10):
        job = _fetch_job(job_id, redis)
        if job is not None:
            status = _status(job)
            if status == JobStatus.STARTED and job_is_dead(job, redis, mailbox_id):
                logger.warning("Sync job %s was left by a dead worker; queued again", job_id)
                _forget_started(job, redis)
                status = None
            if status in PENDING and not (trigger == "manual" and status == JobStatus.SCHEDULED):
                return job, False
            # Finished, failed or waiting to retry: replace it (the id is reused).
            job.delete()
        intervals = config["SYNC_RETRY_INTERVALS"]
        job = Queue(config["RQ_QUEUE"], connection=redis).enqueue(
            sync_mailbox, mailbox_id, trigger,
            job_id=job_id,
            job_timeout=config["SYNC_JOB_TIMEOUT"],
            retry=Retry(max=len(intervals), interval=intervals),
            result_ttl=3600,
            failure_ttl=7 * 86400,
            description=f"sync mailbox {mailbox_id} ({trigger})",
        )
        return job, True


def sync_mailbox(mailbox_id, trigger="schedule"):
    """Sync one mailbox (job); return a summary, or raise SyncFailed to be retried."""
    with app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        if mailbox is None:
            return {"skipped": "deleted"}
        if not mailbox.active:
            return {"skipped": "inactive"}
        lock = _lock(redis_connection(), mailbox_id)
        if not lock.acquire(blocking=False):
            # A recount (or a dying worker's lease, for seconds): RQ tries again later.
            logger.warning("Mailbox %s is locked; its %s sync is retried later",
                           mailbox_id, trigger)
            raise MailboxBusy(f"mailbox {mailbox_id} is locked by another job")
        try:
            close_interrupted_runs(mailbox_id)
            result = run_sync(mailbox, trigger=trigger, progress=_progress(get_current_job()))
        finally:
            _release(lock)
        summary = {"status": result.code, "new_emails": result.new_emails,
                   "commands": result.commands}
        if result.retry:
            raise SyncFailed(f"mailbox {mailbox_id}: {result.code} {result.params}")
        return summary


def _progress(job):
    """Report the new emails so far in job.meta, for the status widget."""
    if job is None:
        return None

    def report(new_emails):
        job.meta["new_emails"] = new_emails
        job.save_meta()

    return report


def due_mailboxes(now):
    """Ids of the active mailboxes whose sync interval has passed since their last run."""
    interval = current_app.config["SYNC_INTERVAL_SECONDS"]
    last = (select(SyncRun.mailbox_id, func.max(SyncRun.started_at).label("started_at"))
            .group_by(SyncRun.mailbox_id).subquery())
    cutoff = now - timedelta(seconds=max(interval - DISPATCH_SLACK, 0))
    query = (
        select(Mailbox.id)
        .outerjoin(last, last.c.mailbox_id == Mailbox.id)
        .where(Mailbox.active.is_(True),
               or_(last.c.started_at.is_(None), last.c.started_at <= cutoff))
        .order_by(last.c.started_at.asc().nulls_first(), Mailbox.id)
    )
    return list(db.session.scalars(query))


def recover_interrupted_syncs():
    """rq cron, every minute: close the runs left "running" by dead workers and queue
    their mailboxes again; return the ids of the mailboxes recovered."""
    with app_context():
        redis = redis_connection()
        cutoff = utcnow() - timedelta(seconds=lease_seconds())
        stale = db.session.scalars(
            select(SyncRun.mailbox_id).where(SyncRun.status == "running",
                                             SyncRun.started_at <= cutoff).distinct()).all()
        recovered = []
        for mailbox_id in stale:
            lock = _lock(redis, mailbox_id)
            if not lock.acquire(blocking=False):
                continue  # a live sync: its run is not interrupted
            try:
                closed = close_interrupted_runs(mailbox_id)
            finally:
                _release(lock)
            mailbox = db.session.get(Mailbox, mailbox_id)
            if closed and mailbox is not None and mailbox.active:
                enqueue_sync(mailbox_id)
                recovered.append(mailbox_id)
        return recovered


def dispatch_due_mailboxes():
    """rq cron, every minute: queue each due mailbox; return the ids queued now."""
    with app_context():
        recover_interrupted_syncs()
        queued = []
        for mailbox_id in due_mailboxes(utcnow()):
            _job, fresh = enqueue_sync(mailbox_id)
            if fresh:
                queued.append(mailbox_id)
        return queued


@dataclass(frozen=True)
class SyncState:
    """What the status widget shows about a mailbox's sync job."""

    status: str | None  # "queued", "started", "scheduled", or None (nothing pending)
    new_emails: int | None = None

    @property
    def pending(self):
        return self.status is not None


def sync_state(mailbox_id):
    """The mailbox's pending sync, read from RQ; a Redis outage reads as nothing pending."""
    try:
        redis = redis_connection()
        job = _fetch_job(sync_job_id(mailbox_id), redis)
        status = _status(job) if job is not None else None
        if status == JobStatus.STARTED and job_is_dead(job, redis, mailbox_id):
            status = None  # its worker died: nothing runs, whatever rq still says
    except RedisError:
        logger.warning("Redis unavailable: sync state of mailbox %s unknown", mailbox_id)
        return SyncState(None)
    if status == JobStatus.DEFERRED:
        status = JobStatus.QUEUED
    if status not in PENDING:
        return SyncState(None)
    return SyncState(str(status.value), job.meta.get("new_emails"))


def recount_mailbox(mailbox_id):
    """Recount a whole mailbox after its repeat period changed (job); return the changes."""
    with app_context():
        mailbox = db.session.get(Mailbox, mailbox_id)
        if mailbox is None:
            return 0
        # A sync recounts the pairs it touches with the period it read; waiting for
        # it to finish keeps the two from writing flags computed with different periods.
        lock = _lock(redis_connection(), mailbox_id)
        if not lock.acquire(blocking=True, blocking_timeout=5):
            raise MailboxBusy(f"mailbox {mailbox_id} is being synced")
        try:
            db.session.refresh(mailbox)
            changed = counting.recount_mailbox(mailbox.id, mailbox.repeat_period_seconds)
            db.session.commit()
        finally:
            _release(lock)
        return changed


def enqueue_recount(mailbox_id):
    """Queue a recount of the mailbox; without Redis, recount now in this process."""
    try:
        redis = redis_connection()
        Queue(current_app.config["RQ_QUEUE"], connection=redis).enqueue(
            recount_mailbox, mailbox_id, retry=RECOUNT_RETRY,
            description=f"recount mailbox {mailbox_id}")
    except RedisError:
        logger.warning("Redis unavailable: recounting mailbox %s in the request", mailbox_id)
        mailbox = db.session.get(Mailbox, mailbox_id)
        counting.recount_mailbox(mailbox_id, mailbox.repeat_period_seconds)
        db.session.commit()
