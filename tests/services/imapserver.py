"""What the throw-away IMAP test servers (Dovecot, GNU imap4d) have in common.

``ImapTestServer`` holds the shared fields (``tmpdir``, ``host``, ``port``,
``tls_port``, certificate paths, ``runtime_dir``, ``users``, ``proc``), the
start-up wait for the greeting, stopping the whole process group, the context
manager and the client helpers (``ssl_context()``, ``client()``, ``password()``).
A subclass names its program and error class, writes its configuration and
users, and calls ``_launch()`` from its ``start()``.

Also here: the unprivileged mail user (``_mail_user``) and the test CA and server
certificate (``_make_certificates``) that both servers use.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import TypeVar

from imapclient import IMAPClient

HOST = "127.0.0.1"

_MAIL_USER_CANDIDATES = ("vmail",)

_Server = TypeVar("_Server", bound="ImapTestServer")


def _check_password(password: str) -> None:
    """Both servers keep passwords in colon-separated, line-based files."""
    if any(c in password for c in ":\r\n\0"):
        raise ValueError("password must not contain ':' or line breaks")


def _message_bytes(message_bytes: bytes | str, internaldate: dt.datetime | None) -> bytes:
    """Check ``deliver()``'s arguments; a ``str`` message is sent as UTF-8."""
    if internaldate is not None and internaldate.tzinfo is None:
        raise ValueError("internaldate must be timezone-aware")
    if isinstance(message_bytes, str):
        message_bytes = message_bytes.encode("utf-8")
    return message_bytes


def _mail_user() -> pwd.struct_passwd:
    """An unprivileged system user to own the maildirs.

    Reuse ``vmail`` if it exists; as root create it with ``useradd --system``;
    if that is not possible fall back to ``nobody``.
    """
    for name in _MAIL_USER_CANDIDATES:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    if os.geteuid() == 0 and shutil.which("useradd"):
        subprocess.run(
            [
                "useradd", "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "vmail",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        try:  # also covers a concurrent process having created it first
            return pwd.getpwnam("vmail")
        except KeyError:
            pass
    return pwd.getpwnam("nobody")


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Write a test CA and a server certificate for 127.0.0.1/localhost.

    Returns (ca_cert_path, server_cert_path, server_key_path).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    not_before = now - dt.timedelta(days=1)
    not_after = now + dt.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "email-tracker tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, "email-tracker test CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "email-tracker tests"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_path, cert_path, key_path



class ImapTestServer:
    """An IMAP server on 127.0.0.1 with its own config, users and mail (a base class).

    Use ``start()``/``stop()`` or the instance as a context manager. Subclasses set
    ``program`` (the file names ``<program>.conf`` and ``<program>.log`` in ``tmpdir``
    and the messages), ``error`` (the exception raised) and define ``start()``.
    """

    program = "imap"
    error: type[Exception] = RuntimeError
    start_timeout = 15.0
    stop_timeout = 10.0
    # Say LOGOUT after reading the greeting of the start-up probe.
    _greet_logout = False

    def __init__(self, tmpdir: str | os.PathLike[str]):
        self.tmpdir = Path(tmpdir).resolve()
        self.host = HOST
        self.config_path = self.tmpdir / f"{self.program}.conf"
        self.log_path = self.tmpdir / f"{self.program}.log"
        self.cert_dir = self.tmpdir / "certs"
        self.ca_path: Path | None = None
        self.cert_path: Path | None = None
        self.key_path: Path | None = None
        self.port: int | None = None
        self.tls_port: int | None = None
        self.runtime_dir: Path | None = None
        self.users: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._mail_pw = _mail_user()

    @property
    def _label(self) -> str:
        return type(self).__name__

    def _require_runtime(self) -> Path:
        if self.runtime_dir is None:
            raise self.error(f"{self._label} is not started")
        return self.runtime_dir

    @property
    def mail_root(self) -> Path:
        return self._require_runtime() / "mail"

    def password(self, login: str) -> str:
        return self.users[login]

    # ------------------------------------------------------------- lifecycle
    def _log_tail(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log output)"
        return text[-limit:] or "(no log output)"

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                data = b""
                while b"\n" not in data and len(data) < 4096:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if self._greet_logout:
                    sock.sendall(b"x LOGOUT\r\n")
                return data.startswith(b"* OK")
        except OSError:
            return False

    def _ensure_certificates(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if self.ca_path is None:
            self.ca_path, self.cert_path, self.key_path = _make_certificates(self.cert_dir)

    def _launch(self, argv: list[str], output: Path, env: dict[str, str] | None = None) -> None:
        """Run ``argv`` in its own process group (stdout and stderr to ``output``) and
        wait until the plain port greets; on failure stop and raise with the log tail."""
        with open(output, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                start_new_session=True,  # own process group: stop() can kill all of it
                env=env,
            )
        # Never leave a server behind if the caller forgets stop().
        atexit.register(self.stop)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.stop()
                raise self.error(f"{self.program} exited with status {rc} during start:\n"
                                 f"{self._log_tail()}")
            if self._greets():
                return
            time.sleep(0.05)
        tail = self._log_tail()
        self.stop()
        raise self.error(f"{self.program} did not greet on {self.host}:{self.port} "
                         f"within {self.start_timeout}s:\n{tail}")

    def _cleanup(self) -> None:
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            self.runtime_dir = None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    pass
            # SIGKILL whatever is left in the process group (a killed master
            # leaves its children behind, imap4d's children serve open sessions).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            atexit.unregister(self.stop)
        self._cleanup()

    def start(self: _Server) -> _Server:
        raise NotImplementedError

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- clients
    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's test CA."""
        if self.ca_path is None:
            raise self.error(f"{self._label} is not started")
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, login: str | None = None, *, tls: bool = False,
               timeout: float = 10.0) -> IMAPClient:
        """An IMAPClient connected (and logged in as ``login`` if given).

        The caller closes it (``with server.client(...) as c:`` logs out).
        """
        self._require_runtime()
        if tls:
            client = IMAPClient(self.host, port=self.tls_port, ssl=True,
                                ssl_context=self.ssl_context(), timeout=timeout)
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        if login is not None:
            try:
                client.login(login, self.users[login])
            except BaseException:
                client.shutdown()
                raise
        return client
