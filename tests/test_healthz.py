"""/healthz, the operators' jobs page and request ids, against real Redis and real workers."""

import json
import logging
import re
import subprocess
import sys

import pytest
from redis import Redis
from rq import Queue

from tests.services.ports import free_port
from tests.test_api import hit
from tracker.jobs.health import HEARTBEAT_KEY, heartbeat
from tracker.views import ops

PARTS = ["database", "redis", "queue", "cron", "writer"]


def run_worker(app, worker_env, tmp_path):
    """`rq worker --burst` of our class, as a separate process, until the queue is empty."""
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--worker-class",
         "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"], app.config["RQ_QUEUE"]],
        env=worker_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def cron_ran(app, worker_env, tmp_path):
    """The heartbeat `rq cron` queues every minute, run by a real worker."""
    redis = Redis.from_url(app.config["REDIS_URL"])
    Queue(app.config["RQ_QUEUE"], connection=redis).enqueue(heartbeat)
    run_worker(app, worker_env, tmp_path)
    assert redis.get(HEARTBEAT_KEY)
    redis.close()


@pytest.fixture
def shop(factory):
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    factory.rule(account, blocks=[block], address="ads@shop.example")
    return site


def test_healthy_without_login_and_without_secrets(app, client, user, cron_ran):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ok" and body["failing"] == []
    assert list(body["checks"]) == PARTS and all(p["ok"] for p in body["checks"].values())
    assert body["checks"]["queue"]["queued"] == 0
    assert 0 <= body["checks"]["cron"]["age_seconds"] < 60
    assert body["checks"]["writer"] == {"ok": True, "backlog": 0, "oldest_seconds": 0.0}
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    port = app.config["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
    for secret in (port, app.config["SECRET_KEY"], app.config["DATABASE_URL"], user.email,
                   "127.0.0.1"):
        assert secret not in text


def test_a_cron_that_never_ran_is_named(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["failing"] == ["cron"]
    assert response.json["checks"]["cron"] == {"ok": False, "error": "never ran"}


def test_the_writers_backlog_counts_what_waits_in_redis(app, client, shop, cron_ran, written,
                                                        monkeypatch):
    for n in range(3):
        assert hit(client, shop, visit=f"visit-{n:04d}").status_code == 200
    writer = client.get("/healthz").json["checks"]["writer"]
    assert writer["ok"] and writer["backlog"] == 3 and writer["oldest_seconds"] >= 0
    monkeypatch.setattr(ops, "BACKLOG_MAX", 2)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json["failing"] == ["writer"]
    assert written() == 3
    writer = client.get("/healthz").json["checks"]["writer"]
    assert writer["backlog"] == 0  # the cursor's entry stays in the stream, and is not counted
    assert hit(client, shop, visit="visit-9999").status_code == 200
    assert client.get("/healthz").json["checks"]["writer"]["backlog"] == 1


def test_redis_away_is_named_and_answered_quickly(app_config, tmp_path):
    import time

    from tracker import create_app
    from tracker.extensions import db

    app_config["REDIS_URL"] = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    app = create_app(app_config)
    with app.app_context():
        db.create_all()
    started = time.monotonic()
    response = app.test_client().get("/healthz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert response.json["failing"] == ["redis", "queue", "cron", "writer"]
    assert response.json["checks"]["database"]["ok"] is True
    assert "Connection refused" not in response.get_data(as_text=True)
    with app.app_context():
        db.engine.dispose()


def test_a_database_away_is_named(app_config, tmp_path):
    from tracker import create_app

    app_config["DATABASE_URL"] = f"sqlite:///{tmp_path}"  # a folder: it cannot be opened
    response = create_app(app_config).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == {"ok": False, "error": "unavailable"}
    assert "database" in response.json["failing"]


# ------------------------------------------------------------------ request ids

def test_a_sane_request_id_is_kept_and_others_replaced(client):
    assert client.get("/login", headers={"X-Request-ID": "lb-42.a:b_c"}).headers[
        "X-Request-ID"] == "lb-42.a:b_c"
    for bad in ("has space", "x" * 65, "<script>", "ünï"):
        got = client.get("/login", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", got), (bad, got)
    one = client.get("/login").headers["X-Request-ID"]
    assert one != client.get("/login").headers["X-Request-ID"]
    assert client.post("/api/v1/hit", data="{}").headers["X-Request-ID"]


def test_log_lines_carry_the_request_id_as_json(app_config, caplog):
    from tracker import create_app

    app_config["REDIS_URL"] = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    app = create_app(app_config)
    with caplog.at_level(logging.WARNING, logger="tracker.views.ops"):
        app.test_client().get("/healthz", headers={"X-Request-ID": "req-7"})
    records = [r for r in caplog.records if r.name == "tracker.views.ops"]
    assert records and all(r.request_id == "req-7" for r in records)
    line = json.loads(ops.JsonFormatter().format(records[0]))
    assert line["request_id"] == "req-7" and line["level"] == "WARNING"
    assert line["message"] == "Health check: Redis unavailable"
    outside = logging.getLogger("tracker.test").makeRecord("x", logging.INFO, "f", 1, "m", (),
                                                           None)
    assert outside.request_id == "-"


# ------------------------------------------------------------------ the jobs page

@pytest.fixture
def failed_job(app, worker_env, tmp_path):
    """A job that failed in a real worker, with markup in its error."""
    redis = Redis.from_url(app.config["REDIS_URL"])
    job = Queue(app.config["RQ_QUEUE"], connection=redis).enqueue(
        "builtins.int", "<script>alert(1)</script>", description="a job that fails")
    run_worker(app, worker_env, tmp_path)
    assert job.get_status(refresh=True) == "failed"
    yield job
    redis.close()


def test_operators_see_failed_jobs_and_retry_them(app, client, factory, user, failed_job):
    client.login(user)  # the first user: an operator while OPERATOR_EMAILS is empty
    assert 'href="/ops/jobs"' in client.get("/").get_data(as_text=True)  # in the menu
    page = client.get("/ops/jobs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "a job that fails" in html and failed_job.id in html
    assert "ValueError: invalid literal for int() with base 10: &#39;&lt;script&gt;" in html
    assert "<script>alert" not in html
    russian = client.get("/ops/jobs", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "Задания с ошибкой" in russian and "Повторить" in russian
    assert client.post(f"/ops/jobs/{failed_job.id}/retry").status_code == 302
    redis = Redis.from_url(app.config["REDIS_URL"])
    assert Queue(app.config["RQ_QUEUE"], connection=redis).job_ids == [failed_job.id]
    assert client.post(f"/ops/jobs/{failed_job.id}/retry").status_code == 404  # not failed now
    assert client.post("/ops/jobs/no-such-job/retry").status_code == 404
    assert "No failed jobs." in client.get("/ops/jobs").get_data(as_text=True)
    redis.close()


def test_only_operators_see_the_jobs_page(app, client, factory, user, failed_job):
    other = factory.user()
    assert client.get("/ops/jobs").status_code == 302  # signed out: to the sign-in page
    client.login(other)
    assert 'href="/ops/jobs"' not in client.get("/").get_data(as_text=True)
    assert client.get("/ops/jobs").status_code == 404
    assert client.post(f"/ops/jobs/{failed_job.id}/retry").status_code == 404
    app.config["OPERATOR_EMAILS"] = f"someone@example.org, {other.email.upper()}"
    assert client.get("/ops/jobs").status_code == 200
    client.get("/logout")
    client.login(user)  # the first user, but not listed
    assert client.get("/ops/jobs").status_code == 404


def test_the_web_process_logs_json_lines_with_the_request_id(app, worker_env, tmp_path):
    """wsgi.py, as gunicorn loads it: a warning during a request is one JSON line on stderr."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = worker_env(REDIS_URL=f"redis://127.0.0.1:{free_port('127.0.0.1')}/0")
    code = ("import wsgi; r = wsgi.app.test_client().get('/healthz', "
            "headers={'X-Request-ID': 'lb-1'}); print(r.status_code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "503", done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {"level": "WARNING", "logger": "tracker.views.ops", "request_id": "lb-1",
            "message": "Health check: Redis unavailable"}.items() <= lines[0].items()


def test_the_api_answers_503_with_retry_after_while_redis_is_away(app_config):
    from tracker import create_app

    app_config["REDIS_URL"] = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    client = create_app(app_config).test_client()
    for path in ("/api/v1/hit", "/api/v1/display"):
        response = client.post(path, data=json.dumps({"k": "some-site-key", "s": "v", "v": "x",
                                                      "u": "https://shop.example/"}),
                               headers={"Origin": "https://shop.example"})
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.headers["Retry-After"] == "5"
        assert response.json == {"error": "temporarily unavailable; try again shortly"}
        assert response.headers["Cache-Control"] == "no-store"


def test_operators_see_the_page_views_the_writer_set_aside(app, client, user, written):
    """An entry the writer cannot read is set aside by the real writer, and shown."""
    from tracker import visitstate

    redis = Redis.from_url(app.config["REDIS_URL"])
    redis.xadd(visitstate.STREAM, {b"garbage": b"<b>not a page view</b>"})
    assert written() == 1
    client.login(user)
    html = client.get("/ops/jobs").get_data(as_text=True)
    assert "1 page-view entry could not be stored and was set aside" in html
    assert "unreadable" in html and "<b>not a page view" not in html
    redis.close()
