"""Run a real, throw-away Courier-IMAP, unpacked from Debian's packages.

A third IMAP server besides Dovecot and GNU imap4d (issue 12, "Other IMAP servers"):
Courier's SELECT/EXAMINE answer has no UIDNEXT, ``UID SEARCH UID n:*`` finds nothing
when n is above the highest UID (and ``UID *`` finds nothing at all), and a Maildir
that never held a message gets a new UIDVALIDITY on every open.

Debian's ``courier-imap`` conflicts with ``dovecot-imapd``, so it is not installed:
``scripts/test-deps.sh`` fetches the packages with ``apt-get download`` and unpacks
them with ``dpkg -x`` into ``.cache/courier/root`` (``COURIER_ROOT`` overrides). The
programs run from there:

* ``couriertcpd`` → ``imaplogin`` → ``imapd Maildir`` on a plain port (``port``, with
  STARTTLS) and the same behind ``couriertls -server`` on an implicit-TLS port
  (``tls_port``), both on 127.0.0.1; the certificate is signed by the test CA;
* ``imaplogin`` checks LOGIN with Courier's ``authdaemond`` and its ``authuserdb``
  module: a login ``local@domain`` is a line of ``userdb.dat`` (uid/gid of the mail
  user, home, Maildir) and its SHA-512 crypt(3) password of ``userdbshadow.dat``, both
  written with Courier's own ``makedatprog``; ``add_user`` works before and after
  ``start`` (the module reopens a database whose file changed).

authdaemond reads ``/etc/courier/authdaemonrc`` and ``/etc/courier/userdb*.dat`` and
listens on ``/run/courier/authdaemon/socket``, paths built into the programs. So the
server runs as root in its own mount and PID namespace (``unshare``): there
``/etc/courier`` is this server's own directory (a read-only overlay of ``/etc``
supplies the mount point when the host has none), ``/run`` is an empty tmpfs, and
where the host has no user ``courier`` (Debian's packages create it; imaplogin runs
couriertls for STARTTLS as that user) ``/etc/passwd`` and ``/etc/group`` are copies
with one, under the mail user's ids.
Nothing changes outside: the host's ``/etc`` and ``/run`` stay as they were, two test
runs each have their own authdaemond, and killing ``unshare`` ends every process of
the server (couriertcpd puts itself into a session of its own, so the process group
alone would not).

INTERNALDATE is the modification time of the message file; APPEND sets it from its date
argument. The server runs in UTC.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable

from .imap4d import _crypt_sha512
from .imapserver import ImapTestServer, _check_password, _message_bytes
from .ports import free_port

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".cache" / "courier" / "root"
_LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}@[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")
_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")

# The unpacked programs, relative to the root.
_PROGRAMS = {
    "couriertcpd": "usr/sbin/couriertcpd",
    "couriertls": "usr/bin/couriertls",
    "imaplogin": "usr/lib/courier/courier/imaplogin",
    "imapd": "usr/bin/imapd",
    "authdaemond": "usr/lib/courier/courier-authlib/authdaemond",
    "makedatprog": "usr/lib/courier/courier-authlib/makedatprog",
    "gam_server": "usr/libexec/gam_server",
}
_AUTH_MODULES = "usr/lib/courier-authlib"

# Debian's /etc/courier/imapd and imapd-ssl, minus the CRAM methods (they need clear
# passwords in the userdb) and the FAM-based IDLE (no gam_server here).
_CAPABILITY = ("IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES "
               "SORT QUOTA IDLE")
_IMAPD_ENV = {
    "IMAP_CAPABILITY": _CAPABILITY,
    "IMAP_CAPABILITY_TLS": _CAPABILITY + " AUTH=PLAIN",
    "IMAP_KEYWORDS": "1",
    "IMAP_ACL": "1",
    "IMAP_PROXY": "0",
    "IMAP_IDLE_TIMEOUT": "60",
    "IMAP_MAILBOX_SANITY_CHECK": "1",
    "IMAP_DISABLETHREADSORT": "0",
    "IMAP_CHECK_ALL_FOLDERS": "0",
    "IMAP_OBSOLETE_CLIENT": "0",
    "IMAP_UMASK": "022",
    "IMAP_USELOCKS": "1",
    "IMAP_ENHANCEDIDLE": "0",
    "IMAP_TRASHFOLDERNAME": "Trash",
    "IMAP_EMPTYTRASH": "Trash:7",
    "IMAP_MOVE_EXPUNGE_TO_TRASH": "0",
    "IMAP_TLS_REQUIRED": "0",
    "TLS_CERTFILE": "/etc/courier/imapd.pem",
    "TLS_VERIFYPEER": "NONE",
    "TZ": "UTC",
}


class CourierError(RuntimeError):
    """Courier-IMAP could not be started or a helper failed."""


class CourierMissing(CourierError):
    """Courier-IMAP is not unpacked (or cannot run here): tests skip with this reason."""


def courier_root() -> Path:
    """The unpacked packages; CourierMissing when a program is not there."""
    root = Path(os.environ.get("COURIER_ROOT") or DEFAULT_ROOT)
    missing = [rel for rel in [*_PROGRAMS.values(), f"{_AUTH_MODULES}/libauthuserdb.so.0"]
               if not (root / rel).exists()]
    if missing:
        raise CourierMissing(
            f"Courier-IMAP is not unpacked in {root} (missing {missing[0]}): run "
            "scripts/courier-unpack.sh (make test-deps does; it fetches Debian's "
            "courier-imap with apt-get download and unpacks it there)")
    return root


def _library_path(root: Path) -> str:
    """Every directory of the unpacked tree that holds shared libraries."""
    dirs = sorted({str(p.parent) for p in root.glob("**/lib*.so*")
                   if _AUTH_MODULES not in str(p.relative_to(root))})
    return ":".join(dirs)


class CourierServer(ImapTestServer):
    """Courier-IMAP on 127.0.0.1 with its own authdaemond, users and Maildirs."""

    program = "courier"
    error = CourierError
    _greet_logout = True

    # ----------------------------------------------------------------- paths
    @property
    def etc_dir(self) -> Path:
        """Mounted at /etc/courier inside the server's namespace."""
        return self._require_runtime() / "etc-courier"

    def home(self, login: str) -> Path:
        return self.mail_root / login

    def maildir(self, login: str) -> Path:
        return self.home(login) / "Maildir"

    # ----------------------------------------------------------------- users
    def add_user(self, login: str, password: str) -> None:
        """Add (or change) a user ``local@domain`` with a Maildir; before or after start()."""
        if not _LOGIN_RE.match(login):
            raise ValueError(f"unsupported login for the Courier test server: {login!r}")
        _check_password(password)
        self.users[login] = password
        if self.runtime_dir is not None:
            self._write_users()

    def _makedat(self, name: str, lines: list[str], umask: int) -> None:
        """Write ``<name>.dat`` with Courier's makedatprog (GDBM; a temp file renamed)."""
        done = subprocess.run(
            [str(self._root / _PROGRAMS["makedatprog"]), "-",
             str(self.etc_dir / f"{name}.tmp"), str(self.etc_dir / f"{name}.dat")],
            input="".join(lines).encode() + b".\n", capture_output=True, timeout=30,
            umask=umask)
        if done.returncode != 0:
            raise CourierError(f"makedatprog {name} failed:\n"
                               f"{done.stderr.decode(errors='replace')}")

    def _write_users(self) -> None:
        uid, gid = self._mail_pw.pw_uid, self._mail_pw.pw_gid
        records, shadow = [], []
        for login, password in sorted(self.users.items()):
            home = self.home(login)
            if not home.exists():
                home.mkdir(mode=0o700)
                for sub in ("", "cur", "new", "tmp"):
                    path = self.maildir(login) / sub
                    path.mkdir(mode=0o700, exist_ok=True)
                for path in (home, self.maildir(login), *self.maildir(login).iterdir()):
                    os.chown(path, uid, gid)
            # makeuserdb's split: the *pw= fields go into the shadow database.
            records.append(f"{login}\tuid={uid}|gid={gid}|home={home}|"
                           f"mail={self.maildir(login)}|_=\n")
            shadow.append(f"{login}\tsystempw={_crypt_sha512(password)}\n")
        # makeuserdb's modes: only root reads the passwords.
        self._makedat("userdb", records, 0o022)
        self._makedat("userdbshadow", shadow, 0o066)

    # ------------------------------------------------------------- lifecycle
    def _script(self) -> str:
        root, etc = self._root, self.etc_dir
        uid, gid = self._mail_pw.pw_uid, self._mail_pw.pw_gid
        courier_user = f"courier:x:{uid}:{gid}:Courier mail server:/nonexistent:/usr/sbin/nologin"
        q = shlex.quote
        env = {**_IMAPD_ENV, "LD_LIBRARY_PATH": self._libs, "PATH": "/usr/bin:/bin",
               "COURIERTLS": str(root / _PROGRAMS["couriertls"]),
               # imapd watches the Maildir through gamin; its library starts gam_server
               # from this path (else it waits about a second per command for none).
               "GAMIN_DEBUG_SERVER": str(root / _PROGRAMS["gam_server"]),
               "GAM_CLIENT_ID": f"courier-{self.port}"}
        plain_env = " ".join(f"{k}={q(v)}" for k, v in {**env, "IMAP_STARTTLS": "YES"}.items())
        tls_env = " ".join(f"{k}={q(v)}" for k, v in {**env, "IMAP_STARTTLS": "NO",
                                                       "IMAP_TLS": "1"}.items())
        tcpd = (f"{q(str(root / _PROGRAMS['couriertcpd']))} -address={self.host} "
                "-maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup")
        login = (f"{q(str(root / _PROGRAMS['imaplogin']))} "
                 f"{q(str(root / _PROGRAMS['imapd']))} Maildir")
        return f"""\
# Generated by tests/services/courier.py -- runs inside its own mount and PID namespace.
set -eu
mount --make-rprivate /
if [ ! -d /etc/courier ]; then
    mount -t overlay overlay -o ro,lowerdir={q(str(self.runtime_dir / "stub-etc"))}:/etc /etc
fi
mount --bind {q(str(etc))} /etc/courier
# imaplogin drops to the user "courier" (Debian's packages create it) for STARTTLS.
if ! getent passwd courier >/dev/null; then
    {{ cat /etc/passwd; echo {q(courier_user)}; }} > {q(str(self.runtime_dir / "passwd"))}
    mount --bind {q(str(self.runtime_dir / "passwd"))} /etc/passwd
fi
if ! getent group courier >/dev/null; then
    {{ cat /etc/group; echo "courier:x:{gid}:"; }} > {q(str(self.runtime_dir / "group"))}
    mount --bind {q(str(self.runtime_dir / "group"))} /etc/group
fi
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/courier/authdaemon
LD_LIBRARY_PATH={q(self._libs)} LTDL_LIBRARY_PATH={q(str(root / _AUTH_MODULES))} \\
    {q(str(root / _PROGRAMS['authdaemond']))} &
n=0
while [ ! -S /run/courier/authdaemon/socket ]; do
    n=$((n + 1)); [ $n -lt 200 ] || {{ echo "authdaemond did not start" >&2; exit 1; }}
    sleep 0.05
done
env -i {tls_env} {tcpd} {self.tls_port} \\
    {q(str(root / _PROGRAMS['couriertls']))} -server -tcpd {login} &
env -i {plain_env} {tcpd} {self.port} {login} &
wait
"""

    def start(self) -> "CourierServer":
        if self.proc is not None:
            raise CourierError("CourierServer already started")
        self._root = courier_root()
        self._libs = _library_path(self._root)
        if os.geteuid() != 0:
            raise CourierMissing("CourierServer needs root (its own mount namespace, and "
                                 "imapd switches to the mail user per login); CI runs as root")
        unshare = shutil.which("unshare")
        if not unshare:
            raise CourierMissing("CourierServer needs unshare(1) (util-linux)")
        probe = subprocess.run(
            [unshare, "--mount", "--pid", "--fork", "sh", "-c",
             "mount --make-rprivate / && mount -t tmpfs tmpfs /run"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if probe.returncode != 0:
            raise CourierMissing("CourierServer cannot make its own mount namespace here: "
                                 + probe.stderr.decode(errors="replace").strip())
        self._ensure_certificates()
        self.port = free_port(self.host)
        self.tls_port = free_port(self.host)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="courier-"))
        os.chmod(self.runtime_dir, 0o755)
        (self.runtime_dir / "stub-etc" / "courier").mkdir(parents=True)
        self.etc_dir.mkdir(mode=0o755)
        self.mail_root.mkdir(mode=0o755)
        authdaemonrc = ('authmodulelist="authuserdb"\ndaemons=3\n'
                        'authdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\n'
                        'DEFAULTOPTIONS=""\nLOGGEROPTS=""\n')
        (self.etc_dir / "authdaemonrc").write_text(authdaemonrc, encoding="utf-8")
        # couriertls reads it as the user "courier" (STARTTLS), as Debian's mkimapdcert
        # leaves it.
        pem = self.etc_dir / "imapd.pem"
        pem.touch(mode=0o600)
        pem.write_bytes(self.key_path.read_bytes() + self.cert_path.read_bytes())
        os.chown(pem, self._mail_pw.pw_uid, self._mail_pw.pw_gid)
        self._write_users()
        self.config_path.write_text(self._script(), encoding="utf-8")
        self._launch([unshare, "--mount", "--pid", "--fork", "--kill-child=SIGKILL",
                      "sh", str(self.config_path)], self.log_path,
                     env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        self._wait_listening(self.tls_port)
        return self

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, port), timeout=1.0).close()
                return
            except OSError:
                time.sleep(0.05)
        tail = self._log_tail()
        self.stop()
        raise CourierError(f"couriertcpd did not listen on {self.host}:{port}:\n{tail}")

    def stop(self) -> None:
        # unshare ignores SIGTERM while it waits; SIGKILL ends it, its child (the PID
        # namespace's init) is killed with it and the kernel kills the rest.
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        super().stop()

    # ------------------------------------------------------------ mail setup
    def deliver(self, login: str, message_bytes: bytes, folder: str = "INBOX",
                internaldate: dt.datetime | None = None,
                flags: Iterable[str | bytes] = ()) -> int:
        """APPEND a message as ``login`` (INTERNALDATE from ``internaldate``); return its UID
        (from the APPENDUID answer: Courier has UIDPLUS)."""
        message_bytes = _message_bytes(message_bytes, internaldate)
        with self.client(login) as c:
            answer = c.append(folder, message_bytes, flags=tuple(flags), msg_time=internaldate)
        found = _APPENDUID_RE.search(answer or b"")
        if not found:
            raise CourierError(f"APPEND to {folder!r} answered without APPENDUID: {answer!r}")
        return int(found.group(2))

    def folder_info(self, login: str, folder: str = "INBOX") -> dict:
        """What EXAMINE answers (UIDVALIDITY, EXISTS... and no UIDNEXT)."""
        with self.client(login) as c:
            return c.select_folder(folder, readonly=True)


__all__ = ["CourierServer", "CourierError", "CourierMissing", "courier_root"]
