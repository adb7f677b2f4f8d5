"""Run a real, throw-away Dovecot IMAP server for tests.

``DovecotServer(tmpdir)`` writes its own ``dovecot.conf`` and runs
``dovecot -F -c FILE`` as a child process:

* a plain IMAP listener (``port``, plaintext auth allowed) and an implicit-TLS
  IMAPS listener (``tls_port``), both on 127.0.0.1 and free ports;
* a certificate for IP 127.0.0.1 / DNS localhost signed by a small test CA,
  made with ``cryptography``; ``ca_path`` is the CA's PEM for clients;
* users in a passwd-file (``add_user`` works before and after ``start``;
  Dovecot re-reads the file when its mtime/size changes);
* maildir storage owned by an unprivileged mail user (Dovecot refuses uid 0).

Layout: config, certificates and logs live in ``tmpdir``. The
``base_dir`` (unix sockets), the passwd-file and the maildirs live in a short private
directory made with ``tempfile.mkdtemp`` under the system temp dir
(``runtime_dir``), which ``stop()`` removes: pytest's tmp dirs are mode 0700
and owned by root, so the mail user, the auth process (user ``dovecot``) and
the login processes (``dovenull``) could not reach anything inside them, and
unix socket paths must stay below 108 bytes.
"""

from __future__ import annotations

import atexit
import datetime as dt
import grp
import math
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable

from .imapserver import HOST  # noqa: F401  (still importable from here)
from .imapserver import ImapTestServer, _check_password, _message_bytes
from .ports import free_port

DOVECOT_BIN = "dovecot"
DOVEADM_BIN = "doveadm"

# Login names end up in paths (home=<mail root>/%u) and passwords in a
# colon-separated passwd-file: keep both to safe characters.
_LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@-]{0,99}$")
_APPENDUID_RE = re.compile(rb"\[\s*APPENDUID\s+(\d+)\s+(\d+)\s*\]", re.IGNORECASE)


class DovecotError(RuntimeError):
    """Dovecot could not be started or a helper command failed."""


def _which(name: str, fallbacks: Iterable[str]) -> str:
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if os.access(path, os.X_OK):
            return path
    raise DovecotError(f"{name!r} not found: install the Debian package 'dovecot-imapd'")


def _existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise DovecotError(f"none of the users {names} exists: install the Debian package 'dovecot-core'")


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (list, tuple)):
        return b" ".join(_as_bytes(v) for v in value)
    return str(value).encode("utf-8", "replace")


def parse_appenduid(response: object) -> tuple[int, int] | None:
    """(uidvalidity, uid) from an APPEND response carrying ``[APPENDUID v u]``."""
    match = _APPENDUID_RE.search(_as_bytes(response))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


class DovecotServer(ImapTestServer):
    """A Dovecot IMAP server on 127.0.0.1 with its own config, users and mail.

    Use ``start()``/``stop()`` or the instance as a context manager.
    """

    program = "dovecot"
    error = DovecotError

    def __init__(self, tmpdir: str | os.PathLike[str]):
        super().__init__(tmpdir)
        self.info_log_path = self.tmpdir / "dovecot-info.log"
        self.stdout_path = self.tmpdir / "dovecot-stdout.log"
        self._login_user = _existing_user("dovenull", "nobody")
        self._internal_pw = pwd.getpwnam(_existing_user("dovecot", "nobody"))
        self._users_mtime = 0.0

    # ----------------------------------------------------------------- paths
    @property
    def base_dir(self) -> Path:
        return self._require_runtime() / "run"

    @property
    def users_path(self) -> Path:
        """The passwd-file (readable by Dovecot's auth process user)."""
        return self._require_runtime() / "users"

    @property
    def mail_uid(self) -> int:
        return self._mail_pw.pw_uid

    @property
    def mail_gid(self) -> int:
        return self._mail_pw.pw_gid

    # ----------------------------------------------------------------- users
    def add_user(self, login: str, password: str) -> None:
        """Add (or change) a user; works before and after ``start()``."""
        if not _LOGIN_RE.match(login):
            raise ValueError(f"unsupported login for the test passwd-file: {login!r}")
        _check_password(password)
        self.users[login] = password
        if self.runtime_dir is not None:
            self._make_home(login)
            written_at = self._write_users()
            # Dovecot's auth process stat()s a passwd-file at most once per
            # second (db-passwd-file.c: passwd_file_sync() returns the cached
            # copy while last_sync_time == ioloop_time). A login in the same
            # second as an earlier lookup would not see this change, so wait
            # until the clock has entered the next second.
            delay = math.floor(written_at) + 1.02 - time.time()
            if delay > 0:
                time.sleep(delay)

    def _write_users(self) -> float:
        lines = "".join(f"{login}:{{PLAIN}}{pw}::::::\n" for login, pw in self.users.items())
        tmp = self.users_path.with_name(self.users_path.name + ".tmp")
        tmp.write_text(lines, encoding="utf-8")
        # The auth process runs as default_internal_user (dovecot), not root.
        os.chown(tmp, 0, self._internal_pw.pw_gid)
        os.chmod(tmp, 0o640)
        # Dovecot re-reads a passwd-file when its mtime (whole seconds) or
        # size changes; make the mtime move forward even for several writes
        # within one second, so an edit of equal size is never missed.
        mtime = max(time.time(), self._users_mtime + 1.0)
        os.utime(tmp, (mtime, mtime))
        self._users_mtime = mtime
        os.replace(tmp, self.users_path)
        return time.time()

    def _make_home(self, login: str) -> None:
        home = self.mail_root / login
        home.mkdir(exist_ok=True)
        os.chown(home, self.mail_uid, self.mail_gid)
        os.chmod(home, 0o700)

    # ---------------------------------------------------------------- config
    def _config_text(self) -> str:
        internal_group_name = grp.getgrgid(self._internal_pw.pw_gid).gr_name
        return f"""\
# Generated by tests/services/dovecot.py -- a throw-away test server.
protocols = imap
listen = {self.host}
base_dir = {self.base_dir}
state_dir = {self.runtime_dir}/state
instance_name = dovecot-test-{self.port}
shutdown_clients = yes

log_path = {self.log_path}
info_log_path = {self.info_log_path}
debug_log_path = {self.info_log_path}
auth_verbose = yes

default_login_user = {self._login_user}
default_internal_user = {self._internal_pw.pw_name}
default_internal_group = {internal_group_name}

ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests try wrong passwords on purpose: no 2 s penalty per failed login.
auth_failure_delay = 0
mail_fsync = never

mail_uid = {self.mail_uid}
mail_gid = {self.mail_gid}
first_valid_uid = {self.mail_uid}
last_valid_uid = {self.mail_uid}
first_valid_gid = {self.mail_gid}
mail_location = maildir:~/Maildir

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_path}
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={self.mail_root}/%u
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No growing per-IP auth penalty (2 -> 4 -> 8 -> 15 s) for the failed
  # logins that tests make on purpose.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    # ------------------------------------------------------------- lifecycle
    def _log_tail(self, limit: int = 6000) -> str:
        parts = []
        for path in (self.log_path, self.info_log_path, self.stdout_path):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"--- {path.name} ---\n{text[-limit:]}")
        return "\n".join(parts) or "(no log output)"

    def start(self) -> "DovecotServer":
        if self.proc is not None:
            raise DovecotError("DovecotServer already started")
        if os.geteuid() != 0:
            raise DovecotError(
                "DovecotServer needs root (it chowns maildirs to the mail user and "
                "Dovecot drops privileges itself); CI runs as root"
            )
        dovecot = _which(DOVECOT_BIN, ["/usr/sbin/dovecot"])
        self._ensure_certificates()
        self.port = free_port(self.host)
        self.tls_port = free_port(self.host)

        self.runtime_dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        os.chmod(self.runtime_dir, 0o755)
        (self.runtime_dir / "state").mkdir(mode=0o750)
        self.mail_root.mkdir(mode=0o755)
        for login in self.users:
            self._make_home(login)
        self._write_users()
        self.config_path.write_text(self._config_text(), encoding="utf-8")

        self._launch([dovecot, "-F", "-c", str(self.config_path)], self.stdout_path)
        return self

    def crash(self) -> None:
        """Kill the whole server at once, as a lost machine would; its mail, users and ports
        stay for ``relaunch()``."""
        proc, self.proc = self.proc, None
        if proc is None:
            raise DovecotError("DovecotServer is not running")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        atexit.unregister(self.stop)

    def relaunch(self) -> "DovecotServer":
        """Start the server again after ``crash()``, on the same ports with the same mail."""
        if self.proc is not None:
            raise DovecotError("DovecotServer is running")
        self._launch([_which(DOVECOT_BIN, ["/usr/sbin/dovecot"]), "-F", "-c",
                      str(self.config_path)], self.stdout_path)
        return self

    # ------------------------------------------------------------ mail setup
    def create_folder(self, login: str, folder: str) -> None:
        with self.client(login) as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)

    def deliver(
        self,
        login: str,
        message_bytes: bytes,
        folder: str = "INBOX",
        internaldate: dt.datetime | None = None,
        flags: Iterable[str | bytes] = (),
    ) -> int:
        """APPEND a message as ``login``; return its UID in ``folder``."""
        message_bytes = _message_bytes(message_bytes, internaldate)
        with self.client(login) as c:
            if folder.upper() != "INBOX" and not c.folder_exists(folder):
                c.create_folder(folder)
            response = c.append(folder, message_bytes, flags=tuple(flags), msg_time=internaldate)
            parsed = parse_appenduid(response)
            if parsed is not None:
                return parsed[1]
            # No UIDPLUS answer: the newest message is ours (tests append
            # sequentially through this helper).
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            if not uids:
                raise DovecotError(f"APPEND to {folder!r} gave no APPENDUID and the folder is empty: {response!r}")
            return max(uids)

    def set_uidvalidity(self, login: str, folder: str, value: int) -> None:
        """Change a folder's UIDVALIDITY with ``doveadm mailbox update``."""
        self._require_runtime()
        if not 0 < int(value) < 2**32:
            raise ValueError("UIDVALIDITY must be a non-zero 32-bit unsigned number")
        doveadm = _which(DOVEADM_BIN, ["/usr/bin/doveadm"])
        cmd = [
            doveadm, "-c", str(self.config_path),
            "mailbox", "update", "-u", login, "--uid-validity", str(int(value)), folder,
        ]
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        if result.returncode != 0:
            raise DovecotError(
                f"{' '.join(cmd)} failed with status {result.returncode}:\n"
                f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}\n"
                f"{self._log_tail(2000)}"
            )

    def flags(self, login: str, folder: str, uid: int) -> tuple[bytes, ...]:
        """The stored FLAGS of message ``uid`` (read-only EXAMINE; changes nothing).

        ``\\Recent`` is left out: it is a per-session flag, not stored state.
        """
        with self.client(login) as c:
            c.select_folder(folder, readonly=True)
            data = c.fetch([uid], ["FLAGS"])
            if uid not in data:
                raise KeyError(f"no message with UID {uid} in {folder!r} of {login!r}")
            return tuple(f for f in data[uid][b"FLAGS"] if f.lower() != b"\\recent")
