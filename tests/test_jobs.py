"""RQ: a real worker in burst mode runs our jobs against the test database and Redis."""

import subprocess
import sys

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import JobStatus

from tests.test_api import hit
from tracker.jobs.health import HEARTBEAT_KEY, heartbeat


def test_worker_runs_a_job_in_burst_mode(app, factory):
    factory.account()
    factory.account()
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue("default", connection=redis)
    job = queue.enqueue(heartbeat)
    # A real worker, in this process so it sees the test app's database.
    worker = SimpleWorker([queue], connection=redis)
    assert worker.work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == 2
    assert redis.get(HEARTBEAT_KEY)
    redis.close()


def test_rq_worker_process_runs_a_job(app, tmp_path, worker_env):
    """`rq worker --burst` as a separate process builds its own app from the environment."""
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue("default", connection=redis)
    job = queue.enqueue(heartbeat)
    env = worker_env()
    rq = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", app.config["REDIS_URL"]]
    done = subprocess.run([*rq, "default"], env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, done.stderr
    assert job.return_value() == 0
    redis.close()


def test_cron_config_registers_the_heartbeat():
    from rq import cron

    import tracker.jobs.cron  # noqa: F401  (registers on import, as `rq cron` loads it)

    names = [f"{d['func'].__module__}.{d['func'].__name__}" for d in cron._job_data_registry]
    assert "tracker.jobs.health.heartbeat" in names


def test_page_views_wake_one_writer_which_writes_them_and_sleeps_again(app, client, factory,
                                                                       tmp_path, worker_env):
    """The writer runs in a real `rq worker` process of our worker class (a forked horse)."""
    from sqlalchemy import func, select

    from tracker import visitstate
    from tracker.extensions import db
    from tracker.models import Visit

    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    factory.rule(account, blocks=[block], address="ads@shop.example")
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue("default", connection=redis)

    def first_page(n):
        assert hit(client, site, visit=f"visit-{n:04d}", n=True).status_code == 200

    for n in range(3):
        first_page(n)
    assert queue.count == 1  # one wake-up for the three
    env = worker_env()
    rq = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--worker-class",
          "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"], "default"]
    done = subprocess.run(rq, env=env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Visit)) == 3
    assert not redis.exists(visitstate.FLAG)  # asleep: the next page view wakes a writer
    first_page(3)
    assert queue.count == 1
    redis.close()
