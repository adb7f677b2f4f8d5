"""Run a real, throw-away GNU imap4d (GNU Mailutils, Debian's ``mailutils-imap4d``).

A second IMAP server besides Dovecot, with its own quirks (issue 12, "Other IMAP
servers"): it answers ``UID SEARCH UID n:*`` with nothing, sends no UIDPLUS answers,
and gives an empty mbox a new UIDVALIDITY on every open.

``Imap4dServer(tmpdir)`` writes its own configuration file and runs
``imap4d --config-file=FILE`` (``mode daemon; foreground yes;``) as a child process,
in its own process group:

* a plain IMAP listener (``port``) and an implicit-TLS listener (``tls_port``), both on
  127.0.0.1 and free ports; the certificate is signed by a test CA (``ca_path``),
  made as for Dovecot;
* users are virtual-domain users (``auth { authentication generic; authorization
  virtdomain; }``): a login ``local@domain`` is looked up in ``<runtime>/passwd/<domain>``,
  a passwd(5)-format file with a SHA-512 crypt(3) hash; ``add_user`` works before and
  after ``start`` (the file is read at every login);
* each user's INBOX is the mbox ``<runtime>/mail/<login>/INBOX``.

INTERNALDATE is the date of the mbox ``From `` envelope line (no zone: read in the
server's zone, which is UTC here). APPEND sets it from its date argument but drops the
zone of that argument, so ``deliver(..., internaldate=...)`` sends it in UTC (whole
seconds).

The debian service (``/usr/sbin/imap4d --daemon`` on port 143) is not used: nothing
here listens anywhere but on the loopback ports it picked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

from .imapserver import HOST  # noqa: F401  (still importable from here)
from .imapserver import ImapTestServer, _check_password, _message_bytes
from .ports import free_port

IMAP4D_BIN = "imap4d"
_LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}@[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")


class Imap4dError(RuntimeError):
    """imap4d could not be started or a helper failed."""


class Imap4dMissing(Imap4dError):
    """imap4d is not installed (or cannot run here): tests skip with this reason."""


def imap4d_binary() -> str:
    found = shutil.which(IMAP4D_BIN) or (
        "/usr/sbin/imap4d" if os.access("/usr/sbin/imap4d", os.X_OK) else None)
    if not found:
        raise Imap4dMissing("GNU imap4d not found: install the Debian package 'mailutils-imap4d'")
    return found


def _crypt_sha512(password: str) -> str:
    """A ``$6$`` crypt(3) hash, as imap4d's generic authentication compares."""
    salt = secrets.token_hex(8)
    name = ctypes.util.find_library("crypt")
    if name:
        lib = ctypes.CDLL(name)
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        hashed = lib.crypt(password.encode(), f"$6${salt}$".encode())
        if hashed and hashed.startswith(b"$6$"):
            return hashed.decode()
    done = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
                          input=password.encode(), capture_output=True, check=True)
    return done.stdout.decode().strip()


class Imap4dServer(ImapTestServer):
    """GNU imap4d on 127.0.0.1 with its own config, users and mail."""

    program = "imap4d"
    error = Imap4dError
    _greet_logout = True

    # ----------------------------------------------------------------- paths
    @property
    def passwd_dir(self) -> Path:
        return self._require_runtime() / "passwd"

    def home(self, login: str) -> Path:
        return self.mail_root / login

    def mbox_path(self, login: str, folder: str = "INBOX") -> Path:
        return self.home(login) / folder

    # ----------------------------------------------------------------- users
    def add_user(self, login: str, password: str) -> None:
        """Add (or change) a virtual-domain user ``local@domain``; before or after start()."""
        if not _LOGIN_RE.match(login):
            raise ValueError(f"unsupported login for imap4d's virtual domains: {login!r}")
        _check_password(password)
        self.users[login] = password
        if self.runtime_dir is not None:
            self._write_users()

    def _write_users(self) -> None:
        domains: dict[str, list[str]] = {}
        uid, gid = self._mail_pw.pw_uid, self._mail_pw.pw_gid
        for login, password in self.users.items():
            local, domain = login.split("@", 1)
            home = self.home(login)
            if not home.exists():
                home.mkdir(mode=0o700)
                os.chown(home, uid, gid)
                # An empty mbox, as imap4d leaves after a first SELECT: APPEND to a
                # missing INBOX answers NO [TRYCREATE].
                inbox = self.mbox_path(login)
                inbox.touch(mode=0o600)
                os.chown(inbox, uid, gid)
            domains.setdefault(domain, []).append(
                f"{local}:{_crypt_sha512(password)}:{uid}:{gid}::{home}:/usr/sbin/nologin\n")
        for domain, lines in domains.items():
            path = self.passwd_dir / domain
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(lines), encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)

    # ---------------------------------------------------------------- config
    def _config_text(self) -> str:
        return f"""\
# Generated by tests/services/imap4d.py -- a throw-away test server.
logging {{ syslog no; print-severity yes; }};
auth {{ authentication generic; authorization virtdomain; }};
virtdomain {{ passwd-dir {self.passwd_dir}; }};
mode daemon;
foreground yes;
pidfile {self.runtime_dir}/imap4d.pid;
max-children 20;
timeout 120;
tcp-wrappers {{ enable no; }};
tls-file-checks {{ key-file none; cert-file none; ca-file none; }};
tls {{
  ssl-certificate-file {self.cert_path};
  ssl-key-file {self.key_path};
}};
server {self.host}:{self.port} {{
  transcript yes;
}};
server {self.host}:{self.tls_port} {{
  tls-mode connection;
  transcript yes;
}};
"""

    # ------------------------------------------------------------- lifecycle
    def start(self) -> "Imap4dServer":
        if self.proc is not None:
            raise Imap4dError("Imap4dServer already started")
        binary = imap4d_binary()
        if os.geteuid() != 0:
            raise Imap4dMissing("Imap4dServer needs root (imap4d switches to the mail "
                                "user per login); CI runs as root")
        self._ensure_certificates()
        self.port = free_port(self.host)
        self.tls_port = free_port(self.host)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="imap4d-"))
        os.chmod(self.runtime_dir, 0o755)
        self.passwd_dir.mkdir(mode=0o700)
        self.mail_root.mkdir(mode=0o755)
        self._write_users()
        self.config_path.write_text(self._config_text(), encoding="utf-8")
        lint = subprocess.run([binary, f"--config-file={self.config_path}", "--config-lint"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if lint.returncode != 0:
            self._cleanup()
            raise Imap4dError(f"imap4d --config-lint failed:\n{lint.stderr.decode(errors='replace')}")
        self._launch([binary, f"--config-file={self.config_path}"], self.log_path,
                     env={**os.environ, "TZ": "UTC"})
        return self

    # ------------------------------------------------------------ mail setup
    def deliver(self, login: str, message_bytes: bytes, folder: str = "INBOX",
                internaldate: dt.datetime | None = None,
                flags: Iterable[str | bytes] = ()) -> int:
        """APPEND a message as ``login`` (INTERNALDATE from ``internaldate``); return its UID.

        imap4d has no UIDPLUS: the UID is the highest one in the folder afterwards
        (tests deliver one at a time through this helper).
        """
        message_bytes = _message_bytes(message_bytes, internaldate)
        if internaldate is not None:
            # imap4d drops the zone of APPEND's date (it writes the wall-clock time into the
            # From line and reads it back in its own zone, UTC here): send it in UTC.
            internaldate = internaldate.astimezone(dt.timezone.utc)
        with self.client(login) as c:
            c.append(folder, message_bytes, flags=tuple(flags), msg_time=internaldate)
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            if not uids:
                raise Imap4dError(f"APPEND to {folder!r} left the folder empty")
            return max(uids)

    def folder_info(self, login: str, folder: str = "INBOX") -> dict:
        """What EXAMINE answers (UIDVALIDITY, UIDNEXT, EXISTS...)."""
        with self.client(login) as c:
            return c.select_folder(folder, readonly=True)


__all__ = ["Imap4dServer", "Imap4dError", "Imap4dMissing", "imap4d_binary"]
