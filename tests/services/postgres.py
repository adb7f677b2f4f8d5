"""Run a throw-away PostgreSQL cluster on 127.0.0.1 for tests.

``initdb`` in a temporary folder, then ``postgres`` on a free loopback port with its
Unix socket in that folder too. Debian's binaries live in
/usr/lib/postgresql/<version>/bin (package ``postgresql``). PostgreSQL refuses to run as
root: as root the cluster runs as the ``postgres`` user (``runuser``) in a folder of
its own under the system's temporary directory.

The cluster trades durability against a power cut for speed (fsync off): it holds
only test data. A server process that dies keeps what it committed.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .ports import free_port

HOST = "127.0.0.1"
SUPERUSER = "tracker"


class PostgresMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresMissing(
        "PostgreSQL's initdb not found: install the Debian package 'postgresql' "
        "(make test-deps does it as root)")


class PostgresServer:
    """``PostgresServer(tmpdir).start()`` ... ``.stop()``.

    ``url(name)`` is the SQLAlchemy URL of database `name` (psycopg 3 driver);
    ``create_database``/``drop_database`` manage databases; ``restart()`` stops the
    server immediately (as a crash would) and starts it again on the same port.
    """

    start_timeout = 30.0

    def __init__(self, tmpdir: str | os.PathLike[str]):
        self.bin_dir = find_bin_dir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            # pytest's temporary folders are private to root: postgres could not enter them.
            self.tmpdir = Path(tempfile.mkdtemp(prefix="tracker-test-pg-"))
            self.owned_tmpdir = True
            user = pwd.getpwnam("postgres")
            os.chown(self.tmpdir, user.pw_uid, user.pw_gid)
        else:
            self.tmpdir = Path(tmpdir)
            self.owned_tmpdir = False
        self.data_dir = self.tmpdir / "data"
        self.socket_dir = self.tmpdir
        self.log_path = self.tmpdir / "postgres.log"
        self.port: int | None = None
        self._names = itertools.count(1)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=check, cwd=self.tmpdir)

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def start(self) -> "PostgresServer":
        if not self.data_dir.exists():
            result = self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER,
                               "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
                               "--no-sync", check=False)
            if result.returncode:
                raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        if self.port is None:
            self.port = free_port(HOST)
        options = " ".join([
            f"-p {self.port}", f"-c listen_addresses={HOST}",
            f"-c unix_socket_directories={self.socket_dir}",
            # No fsync (the data is thrown away), but commits are written before they are
            # answered (synchronous_commit stays on), so that a server stopped at once
            # keeps every commit it answered, as a real one does after a crash.
            "-c fsync=off", "-c full_page_writes=off",
            "-c max_connections=200", "-c shared_buffers=32MB",
        ])
        result = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path),
                           "-o", options, "-w", "-t", str(int(self.start_timeout)), check=False)
        if result.returncode:
            raise RuntimeError(f"PostgreSQL did not start:\n{result.stdout}\n{self._log_tail()}")
        deadline = time.monotonic() + self.start_timeout
        while self._run("pg_isready", "-h", HOST, "-p", str(self.port), "-U", SUPERUSER,
                        "-d", "postgres", check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL is not ready:\n{self._log_tail()}")
            time.sleep(0.1)
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.data_dir.exists():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", check=False)

    def restart(self) -> None:
        """Stop at once (no shutdown checkpoint, as after a crash) and start again."""
        self.stop(mode="immediate")
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self.owned_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run `sql` outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname=database,
                             autocommit=True) as connection:
            connection.execute(sql)

    def create_database(self, template: str | None = None, name: str | None = None) -> str:
        """A new database (a copy of `template`, else empty); returns its name."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        source = f" TEMPLATE {template}" if template else " TEMPLATE template0"
        self.execute(f"CREATE DATABASE {name}{source}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending whatever sessions still use it."""
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def raw_bytes(self, database: str) -> bytes:
        """Everything the server wrote to disk for `database`: its files and the WAL
        (after a checkpoint, so that nothing waits in memory)."""
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname=database,
                             autocommit=True) as connection:
            connection.execute("CHECKPOINT")
            oid = connection.execute(
                "SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        files = [*(self.data_dir / "base" / str(oid)).iterdir(),
                 *(self.data_dir / "pg_wal").glob("0*")]
        return b"".join(path.read_bytes() for path in files if path.is_file())

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
