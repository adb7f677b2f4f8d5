"""Operations: /healthz for load balancers, the jobs page for operators, request ids.

- /healthz (no login): the database, Redis, the job queue's depth, the age of the last
  cron run (the heartbeat job `rq cron` queues every minute; a worker runs it) and the
  page-view writer's backlog (Redis stream entries not yet written). JSON; 200 when
  every part is healthy, else 503 naming the failing parts. Only counts and ages:
  no host names, no error texts, no account data.
- /ops/jobs: failed jobs with their error, and a retry button; the page views the
  writer set aside (tracker.ingest.rejected) with their reason. Operators are the users
  whose email is in OPERATOR_EMAILS; when it is empty, the first user created (the
  one `make run` or `flask users create` made first). Anyone else gets 404.
- Every request gets an id: X-Request-ID from the client when it is sane (1-64 of
  letters, digits and ._:-), else a new one; it is sent back in X-Request-ID and every
  log line written during the request carries it (LogRecord.request_id); in the web
  processes (wsgi.py, as gunicorn runs them) log lines are JSON objects.
"""

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from redis import Redis
from redis.exceptions import RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from tracker import ingest, visitstate
from tracker.extensions import db
from tracker.jobs.health import HEARTBEAT_KEY
from tracker.models import User
from tracker.views.helpers import render

logger = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)

# Unhealthy beyond these: the cron's heartbeat runs every 60 s.
CRON_MAX_AGE = 180
# Page views waiting in Redis: more than this many, or the oldest older than this.
BACKLOG_MAX = 10_000
BACKLOG_MAX_AGE = 300
QUEUE_MAX = 1_000
FAILED_SHOWN = 100
SET_ASIDE_SHOWN = 20

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_probe_clients = {}


# ------------------------------------------------------------------ request ids

def _request_id():
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _send_request_id(response):
    rid = g.get("request_id")
    if rid:
        response.headers["X-Request-ID"] = rid
    return response


_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args, **kwargs):
    record = _base_factory(*args, **kwargs)
    record.request_id = g.get("request_id", "-") if has_request_context() else "-"
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, exception."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def init_app(app):
    app.before_request(_request_id)
    app.after_request(_send_request_id)
    # The navigation links the jobs page for operators (asked only when a page does).
    app.context_processor(lambda: {"is_operator": lambda: is_operator(current_user)})
    if logging.getLogRecordFactory() is not _record_with_request_id:
        logging.setLogRecordFactory(_record_with_request_id)


def configure_logging():
    """JSON log lines on stderr for the web processes (wsgi.py), unless logging is set up.

    gunicorn configures only its own loggers; rq workers keep rq's own log format.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)


# ------------------------------------------------------------------ /healthz

def _probe_redis():
    """A client that fails fast: a health check must not wait out the usual retries."""
    url = current_app.config["REDIS_URL"]
    if url not in _probe_clients:
        _probe_clients[url] = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2,
                                             retry=Retry(NoBackoff(), 0))
    return _probe_clients[url]


def _check_database():
    started = time.monotonic()
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception:
        db.session.rollback()
        logger.warning("Health check: database unavailable", exc_info=True)
        return {"ok": False, "error": "unavailable"}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def _stream_id_seconds(entry_id, now):
    return max(0.0, now - int(entry_id.split("-")[0]) / 1000)


def _writer_backlog(redis, now):
    """Entries of the page-view stream above the writer's cursor, and the oldest one's age."""
    from tracker.ingest import CURSOR
    from tracker.models import IngestCursor

    last = db.session.scalar(select(IngestCursor.last_id).where(IngestCursor.name == CURSOR))
    db.session.rollback()
    first = redis.xrange(visitstate.STREAM, min="(" + (last or "0-0"), count=1)
    if not first:
        return 0, 0.0
    oldest = first[0][0].decode()
    # The writer trims the stream up to its cursor, keeping that one entry.
    length = redis.xlen(visitstate.STREAM)
    kept = redis.xrange(visitstate.STREAM, min="-", max=oldest, count=2)
    backlog = length - (len(kept) - 1)
    return backlog, round(_stream_id_seconds(oldest, now), 1)


def health():
    """Every part's state: (all healthy, {part: details})."""
    now = time.time()
    checks = {"database": _check_database()}
    redis = _probe_redis()
    try:
        started = time.monotonic()
        redis.ping()
        checks["redis"] = {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    except RedisError:
        logger.warning("Health check: Redis unavailable")
        checks["redis"] = {"ok": False, "error": "unavailable"}
        for part in ("queue", "cron", "writer"):
            checks[part] = {"ok": False, "error": "redis unavailable"}
        return False, checks
    try:
        queue = Queue(current_app.config["RQ_QUEUE"], connection=redis)
        queued = queue.count
        checks["queue"] = {"ok": queued <= QUEUE_MAX, "queued": queued,
                           "failed": FailedJobRegistry(queue=queue).count,
                           "workers": Worker.count(queue=queue)}
        beat = redis.get(HEARTBEAT_KEY)
        if beat is None:
            checks["cron"] = {"ok": False, "error": "never ran"}
        else:
            at = datetime.fromisoformat(beat.decode())
            age = round(now - at.replace(tzinfo=at.tzinfo or UTC).timestamp(), 1)
            checks["cron"] = {"ok": age <= CRON_MAX_AGE, "age_seconds": age}
        try:
            backlog, oldest = _writer_backlog(redis, now)
        except SQLAlchemyError:
            db.session.rollback()
            checks["writer"] = {"ok": False, "error": "database unavailable"}
        else:
            checks["writer"] = {"ok": backlog <= BACKLOG_MAX and oldest <= BACKLOG_MAX_AGE,
                                "backlog": backlog, "oldest_seconds": oldest}
    except RedisError:
        checks["redis"] = {"ok": False, "error": "unavailable"}
        for part in ("queue", "cron", "writer"):
            checks.setdefault(part, {"ok": False, "error": "redis unavailable"})
    return all(part["ok"] for part in checks.values()), checks


@bp.get("/healthz")
def healthz():
    healthy, checks = health()
    body = {"status": "ok" if healthy else "fail", "checks": checks,
            "failing": [name for name, part in checks.items() if not part["ok"]]}
    response = current_app.response_class(json.dumps(body), status=200 if healthy else 503,
                                          content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------ the jobs page

def is_operator(user):
    if not user or not user.is_authenticated:
        return False
    listed = {e.strip().lower() for e in current_app.config.get("OPERATOR_EMAILS", "").split(",")
              if e.strip()}
    if listed:
        return user.email.lower() in listed
    first = db.session.scalar(select(func.min(User.id)))
    return user.id == first


@bp.before_request
def operators_only():
    if request.endpoint == "ops.healthz":
        return None
    return _operator_gate()


@login_required
def _operator_gate():
    if not is_operator(current_user):
        abort(404)  # the page does not exist for anyone else
    return None


def _failed_jobs(queue):
    registry = FailedJobRegistry(queue=queue)
    ids = registry.get_job_ids(0, FAILED_SHOWN - 1)
    jobs = []
    for job in Job.fetch_many(ids, connection=queue.connection):
        if job is None:
            continue
        result = job.latest_result()
        error = ((result.exc_string if result is not None else "") or "").strip()
        jobs.append({"id": job.id, "description": job.description or job.func_name,
                     "ended_at": job.ended_at, "error": error.splitlines()[-1] if error else "",
                     "traceback": error[-4000:]})
    return registry.count, jobs


@bp.get("/ops/jobs")
def jobs():
    from tracker.extensions import redis_client

    try:
        queue = Queue(current_app.config["RQ_QUEUE"], connection=redis_client())
        failed_count, failed = _failed_jobs(queue)
        workers = Worker.all(queue=queue)
        counts = {"queued": queue.count, "started": queue.started_job_registry.count,
                  "scheduled": queue.scheduled_job_registry.count, "failed": failed_count}
        set_aside = ingest.rejected(queue.connection, count=SET_ASIDE_SHOWN)
        set_aside_count = ingest.rejected_count(queue.connection)
    except RedisError:
        abort(503)
    healthy, checks = health()
    return render("ops/jobs.html", failed=failed, workers=workers, counts=counts,
                  checks=checks, healthy=healthy, set_aside=set_aside,
                  set_aside_count=set_aside_count,
                  failing=[name for name, part in checks.items() if not part["ok"]])


@bp.post("/ops/jobs/<job_id>/retry")
def retry(job_id):
    from tracker.extensions import redis_client

    queue = Queue(current_app.config["RQ_QUEUE"], connection=redis_client())
    try:
        FailedJobRegistry(queue=queue).requeue(job_id)
    except (NoSuchJobError, InvalidJobOperation):
        abort(404)
    flash(_("The job was queued again."), "success")
    return redirect(url_for("ops.jobs"))

