"""RQ: a real worker in burst mode runs our jobs against the test database and Redis."""

import subprocess
import sys

from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import JobStatus

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


def test_rq_worker_process_runs_a_job(app, tmp_path):
    """`rq worker --burst` as a separate process builds its own app from the environment."""
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue("default", connection=redis)
    job = queue.enqueue(heartbeat)
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "FERNET_KEYS": ",".join(app.config["FERNET_KEYS"]),
        "INSTANCE_PATH": str(tmp_path / "worker-instance"),
    }
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
