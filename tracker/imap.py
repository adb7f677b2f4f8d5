"""Outbound IMAP to servers that users name: guarded, verified, bounded in time.

The host of a mailbox is user input, so every connection here
- resolves the name once and refuses private, loopback, link-local, multicast,
  unspecified and reserved addresses (unless `allow_private`), then connects to
  the address it checked, so a second DNS answer cannot point elsewhere;
- accepts only the configured ports;
- verifies TLS certificates and the host name (system CAs plus an optional
  `ca_file`), and never sends a password before TLS is up (SSL/TLS or STARTTLS);
- bounds every socket operation by `timeout`, and the connection phase (or a
  whole session with `deadline`) by a watchdog that cuts the socket off, so a
  server that trickles bytes cannot hold a worker either.

No Flask views here: the web check and the sync workers both use this module.
Public: ServerParams, options, connect, session, check_connection, list_folders,
examine, failure, describe, CheckResult, ImapError, PERMANENT, host_addresses,
address_key.
"""

import ast
import imaplib
import ipaddress
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from flask_babel import lazy_gettext as _l
from imapclient import IMAPClient, SocketTimeout
from imapclient import exceptions as imap_errors

from tracker.mailservices import SSL, STARTTLS

logger = logging.getLogger(__name__)

DEFAULT_PORTS = (993, 143)
DEFAULT_TIMEOUT = 10.0
# Characters that would end an IMAP command line early.
_UNSENDABLE = set("\r\n\0")


@dataclass(frozen=True)
class ServerParams:
    """Where a mailbox lives and how to sign in there (the password stays out of repr)."""

    host: str
    port: int
    security: str
    login: str
    password: str = field(repr=False)
    service: str = "other"
    # "password" (IMAP LOGIN), or "xoauth2" / "oauthbearer" (SASL with an OAuth access
    # token, which `token` returns when the connection signs in: tracker.oauth).
    mechanism: str = "password"
    token: object = field(default=None, repr=False, compare=False)


# ----------------------------------------------------------------- errors

class ImapError(Exception):
    """A failure this module detects itself; `code` and `params` describe it."""

    code = "error"

    def __init__(self, **params):
        super().__init__(self.code, params)
        self.params = params


class BlockedAddress(ImapError):
    code = "blocked_address"


class PortNotAllowed(ImapError):
    code = "port_not_allowed"


class HostNotFound(ImapError):
    code = "host_not_found"


class FolderMissing(ImapError):
    code = "folder_missing"


class UnsendableCharacters(ImapError):
    code = "unsupported_characters"


class DeadlineExceeded(ImapError):
    code = "timeout"


MESSAGES = {
    "ok": _l("Integration works."),
    "auth_failed": _l("Wrong login or password: the server did not accept them."),
    "host_not_found": _l("Host not found: “%(host)s” does not resolve to an address. "
                         "Check the server name."),
    "refused": _l("Connection refused: nothing accepts connections on %(host)s, "
                  "port %(port)s."),
    "unreachable": _l("The server %(host)s cannot be reached on port %(port)s from here."),
    "tls_rejected": _l("TLS certificate rejected: %(host)s did not present a certificate "
                       "that can be trusted for this name (%(detail)s)."),
    "tls_failed": _l("A TLS connection to %(host)s, port %(port)s could not be set up: "
                     "check the port and the security setting."),
    "starttls_unsupported": _l("The server does not offer STARTTLS on port %(port)s: choose "
                               "SSL/TLS (usually port 993)."),
    "timeout": _l("Timed out: %(host)s did not answer within %(seconds)s seconds."),
    "folder_missing": _l("Folder missing: there is no folder “%(folder)s” in this mailbox."),
    "blocked_address": _l("“%(host)s” points to a private or reserved address "
                          "(%(address)s); connecting there is not allowed."),
    "port_not_allowed": _l("Port %(port)s is not allowed; use one of: %(ports)s."),
    "unsupported_characters": _l("The login or password contains line breaks or other "
                                 "characters that IMAP cannot send."),
    "connection_lost": _l("The server %(host)s closed the connection unexpectedly."),
    "server_error": _l("The server reported an error: %(detail)s"),
    "password_unreadable": _l("The stored password cannot be decrypted with the current "
                              "FERNET_KEYS: enter the password again."),
    "oauth_revoked": _l("Access was withdrawn: the mail provider no longer accepts this "
                        "sign-in. Sign in again with the provider in the credentials."),
    "oauth_unavailable": _l("The sign-in service of the mail provider could not be reached "
                            "(%(detail)s); the sync is tried again later."),
    "interrupted": _l("Interrupted: the worker running this sync stopped before it "
                      "finished. What it had stored is kept; the next sync reads the rest."),
}
# The server's own explanation, added to a failed sign-in.
SERVER_SAID = _l("The server said: “%(detail)s”")
# Extra words for a failed sign-in, per mail service.
AUTH_NOTES = {
    "outlook": _l("Personal Microsoft accounts no longer accept passwords over IMAP since "
                  "September 2024, so such a mailbox cannot be connected with a password."),
    "gmail": _l("Gmail accepts only an app password, created after turning on 2-Step "
                "Verification."),
    "yandex": _l("Yandex accepts only an app password here, and mail programs must be "
                 "allowed in its Mail settings."),
    "mailru": _l("Mail.ru accepts only a password for external applications here."),
}
# Failures that retrying will not fix until someone changes the settings.
PERMANENT = frozenset({
    "auth_failed", "blocked_address", "port_not_allowed", "folder_missing",
    "tls_rejected", "starttls_unsupported", "unsupported_characters", "host_not_found",
    "password_unreadable", "oauth_revoked",
})


def describe(code, params=None):
    """The plain-words message of a result code, in the current language."""
    params = dict(params or {})
    template = MESSAGES.get(code)
    if template is None:
        return str(MESSAGES["server_error"] % {"detail": params.get("detail") or code})
    try:
        text = str(template) % params if "%(" in str(template) else str(template)
    except (KeyError, TypeError, ValueError):
        text = str(template)
    if code == "auth_failed" and params.get("detail"):
        text = f"{text} {SERVER_SAID % {'detail': params['detail']}}"
    note = AUTH_NOTES.get(params.get("service")) if code == "auth_failed" else None
    return f"{text} {note}" if note else text


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a connection check: ok, a stable code, and what to show."""

    ok: bool
    code: str
    params: dict = field(default_factory=dict)
    # What the server says about itself, for telling one inbox from another whatever
    # name it was reached by: the checked addresses the host resolved to (the one
    # connected to first), and INBOX's UIDVALIDITY (None when it was not read).
    addresses: tuple = field(default=(), compare=False)
    uidvalidity: int | None = field(default=None, compare=False)

    @property
    def message(self):
        return describe(self.code, self.params)


def failure(exc, params, *, timeout=DEFAULT_TIMEOUT):
    """Turn an exception from connect/session/examine into a CheckResult with a precise code."""
    where = {"host": params.host, "port": params.port}
    if isinstance(exc, ImapError):
        code, extra = exc.code, exc.params
        if code == "timeout":
            extra = {"seconds": _seconds(timeout), **extra}
    elif isinstance(exc, imap_errors.LoginError):
        code, extra = "auth_failed", {"service": params.service, "detail": server_words(exc)}
    elif isinstance(exc, imap_errors.CapabilityError):
        code, extra = "starttls_unsupported", {}
    elif isinstance(exc, socket.gaierror):
        code, extra = "host_not_found", {}
    elif isinstance(exc, ssl.SSLCertVerificationError):
        code, extra = "tls_rejected", {"detail": exc.verify_message or exc.reason or "?"}
    elif isinstance(exc, ssl.SSLError):
        code, extra = "tls_failed", {}
    elif isinstance(exc, TimeoutError):
        code, extra = "timeout", {"seconds": _seconds(timeout)}
    elif isinstance(exc, ConnectionRefusedError):
        code, extra = "refused", {}
    elif isinstance(exc, UnicodeError):
        code, extra = "unsupported_characters", {}
    elif isinstance(exc, (imap_errors.IMAPClientAbortError, ConnectionError, EOFError)):
        code, extra = "connection_lost", {}
    elif isinstance(exc, OSError):
        code, extra = "unreachable", {}
    elif isinstance(exc, imap_errors.IMAPClientError):
        code, extra = "server_error", {"detail": _short(exc)}
    else:
        # A server that answers in ways the IMAP library does not expect: still a
        # message for the user, and the details in the log.
        logger.warning("Unexpected IMAP failure with %s:%s", params.host, params.port,
                       exc_info=exc)
        code, extra = "server_error", {"detail": type(exc).__name__}
    return CheckResult(False, code, {**where, **extra})


def server_words(exc, limit=200):
    """What the server said in an imaplib/imapclient error, as readable text.

    imapclient wraps the server's bytes in str(), giving "b'[AUTHENTICATIONFAILED] ...'".
    """
    text = str(exc).strip()
    if text[:2] in ("b'", 'b"') and text[-1:] == text[1]:
        try:
            text = ast.literal_eval(text).decode("utf-8", "replace")
        except (ValueError, SyntaxError, UnicodeError):
            pass
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:limit]


def _seconds(value):
    return f"{value:g}"


def _short(exc, limit=200):
    text = " ".join(str(exc).split())
    return text[:limit]


# --------------------------------------------------------- address guard

# IPv4 addresses embedded in IPv6 by NAT64 gateways (RFC 6052, RFC 8215).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def is_public(address):
    """True when an IP address is a public unicast one (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    if ip.version == 6:
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            ip = embedded
        if ip.version == 6 and ip.is_site_local:
            return False
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_unspecified or ip.is_reserved or not ip.is_global
    )


def _literal(host):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def resolve(host, port, *, allow_private=False, timeout=DEFAULT_TIMEOUT):
    """Resolve host once; return [(family, sockaddr)] after refusing non-public addresses.

    Every address must pass: a name that resolves to a public and a private
    address at once is refused, not half-used.
    """
    if _literal(host) is not None:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
    else:
        infos = _getaddrinfo_within(host, port, timeout)
    addresses = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if not allow_private and not is_public(sockaddr[0]):
            raise BlockedAddress(host=host, address=sockaddr[0])
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise HostNotFound(host=host)
    return addresses


def _getaddrinfo_within(host, port, timeout):
    """getaddrinfo has no timeout of its own: wait for it in a helper thread at most `timeout`."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-dns")
    try:
        future = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            return future.result(timeout=max(timeout, 0.01))
        except FutureTimeout:
            raise DeadlineExceeded(host=host) from None
        except UnicodeError:
            raise HostNotFound(host=host) from None
    finally:
        pool.shutdown(wait=False)


# ------------------------------------------------------------ connections

@lru_cache(maxsize=8)
def ssl_context(ca_file=None):
    """A verifying client context: system CAs, plus ca_file for self-hosted servers."""
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Watchdog:
    """Shuts a connection down when its time is up, so no blocking read outlives the deadline.

    It keeps its own duplicate of the socket's descriptor: shutdown(2) on it ends the
    connection for every descriptor, and the number is never reused while we hold it.
    """

    def __init__(self, seconds):
        self.expired = False
        self._lock = threading.Lock()
        self._sock = None
        self._timer = threading.Timer(max(seconds, 0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock):
        with self._lock:
            self._sock = sock.dup()
            if self.expired:
                self._shutdown()

    def _fire(self):
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self):
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class _PinnedIMAP4(imaplib.IMAP4):
    """imaplib over a socket we already connected to a checked address.

    `host` stays the name the user gave: TLS (here and in STARTTLS) verifies the
    certificate against it.
    """

    def __init__(self, host, port, sock, tls_context=None):
        self._pinned = sock
        self._tls_context = tls_context
        super().__init__(host, port)

    def _create_socket(self, timeout=None):
        sock, self._pinned = self._pinned, None
        if self._tls_context is None:
            return sock
        try:
            return self._tls_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _PinnedClient(IMAPClient):
    """IMAPClient whose connection goes to the pinned socket instead of a new lookup."""

    def __init__(self, host, port, sock, *, use_ssl, context, timeout):
        self._pinned_sock = sock
        super().__init__(host, port=port, ssl=use_ssl, ssl_context=context, timeout=timeout)

    def _create_IMAP4(self):
        sock, self._pinned_sock = self._pinned_sock, None
        return _PinnedIMAP4(self.host, self.port, sock, self.ssl_context if self.ssl else None)


def _open_socket(addresses, deadline):
    """Connect to the first of the checked addresses that answers, before the deadline."""
    last_error = None
    for family, sockaddr in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(remaining)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    if last_error is not None:
        raise last_error
    raise TimeoutError("connect")


def _check_sendable(params):
    if _UNSENDABLE & set(params.login + params.password):
        raise UnsendableCharacters()


def options(config):
    """The connection keyword arguments that the app's configuration sets."""
    return {
        "allow_private": config["ALLOW_PRIVATE_IMAP_HOSTS"],
        "ca_file": config["IMAP_CA_FILE"],
        "allowed_ports": tuple(config["IMAP_ALLOWED_PORTS"]),
        "timeout": config["IMAP_TIMEOUT_SECONDS"],
    }


def _login(params, watchdog, *, allow_private, ca_file, allowed_ports, timeout):
    """Resolve, check, connect, secure and sign in; the watchdog limits the wall time."""
    if params.port not in allowed_ports:
        raise PortNotAllowed(port=params.port, ports=", ".join(map(str, sorted(allowed_ports))))
    if params.security not in (SSL, STARTTLS):
        raise ValueError(f"unknown security {params.security!r}")
    _check_sendable(params)
    # An OAuth access token (refreshed when it has expired) before any connection.
    secret = params.token() if params.mechanism != "password" else params.password
    if _UNSENDABLE & set(secret):
        raise UnsendableCharacters()
    deadline = time.monotonic() + timeout
    addresses = resolve(params.host, params.port, allow_private=allow_private, timeout=timeout)
    sock = _open_socket(addresses, deadline)
    watchdog.watch(sock)
    connected = address_key(sock.getpeername()[0])
    checked = tuple(dict.fromkeys(
        [connected] + [address_key(sockaddr[0]) for _family, sockaddr in addresses]))
    context = ssl_context(ca_file)
    client = _PinnedClient(
        params.host, params.port, sock, use_ssl=params.security == SSL, context=context,
        timeout=SocketTimeout(connect=timeout, read=timeout),
    )
    try:
        if params.security == STARTTLS:
            client.starttls(context)
        if params.mechanism == "password":
            client.login(params.login, secret)
        else:
            try:
                _oauth_login(client, params, secret)
            except imap_errors.LoginError:
                # A cached access token the provider has withdrawn early: once more
                # with a freshly refreshed one (the token source refreshes it).
                fresh = params.token(fresh=True)
                if fresh == secret:
                    raise
                _oauth_login(client, params, fresh)
    except BaseException:
        _close(client)
        raise
    client.checked_addresses = checked
    return client


def _oauth_login(client, params, token):
    if params.mechanism == "oauthbearer":
        client.oauthbearer_login(params.login, token)
    else:
        client.oauth2_login(params.login, token)


def connect(params, *, allow_private=False, ca_file=None, allowed_ports=DEFAULT_PORTS,
            timeout=DEFAULT_TIMEOUT):
    """A logged-in IMAPClient for params; the caller logs out (or use session()).

    Raises ImapError subclasses, socket/ssl errors and imapclient errors: pass
    them to failure() for a code and a message. The whole connection phase
    (DNS, TCP, TLS, greeting, STARTTLS, LOGIN) takes at most `timeout` seconds;
    afterwards each socket read or write does.
    """
    watchdog = _Watchdog(timeout)
    try:
        return _login(params, watchdog, allow_private=allow_private, ca_file=ca_file,
                      allowed_ports=allowed_ports, timeout=timeout)
    except Exception as exc:
        if watchdog.expired:
            raise DeadlineExceeded() from exc
        raise
    finally:
        watchdog.stop()


@contextmanager
def session(params, *, deadline=None, allow_private=False, ca_file=None,
            allowed_ports=DEFAULT_PORTS, timeout=DEFAULT_TIMEOUT):
    """A logged-in connection, logged out afterwards.

    With `deadline` (seconds) the whole session, connection included, is cut off
    when it passes and raises DeadlineExceeded.
    """
    watchdog = _Watchdog(deadline if deadline is not None else timeout)
    client = None
    try:
        client = _login(params, watchdog, allow_private=allow_private, ca_file=ca_file,
                        allowed_ports=allowed_ports, timeout=timeout)
        if deadline is None:
            watchdog.stop()
        yield client
    except Exception as exc:
        if watchdog.expired:
            raise DeadlineExceeded() from exc
        raise
    finally:
        if client is not None:
            _close(client)
        watchdog.stop()


def _close(client):
    """Log out politely; a connection that is already broken is just closed."""
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def examine(client, folder):
    """Open a folder read-only (EXAMINE): nothing in the mailbox changes."""
    try:
        return client.select_folder(folder, readonly=True)
    except imap_errors.IMAPClientAbortError:
        raise
    except imap_errors.IMAPClientError:
        raise FolderMissing(folder=folder) from None


def check_connection(params, folders=("INBOX",), *, allow_private=False, ca_file=None,
                     allowed_ports=DEFAULT_PORTS, timeout=DEFAULT_TIMEOUT):
    """Sign in, examine each folder read-only, log out; all within `timeout` seconds.

    A successful result also carries the addresses connected to and INBOX's
    UIDVALIDITY (from its EXAMINE, or a STATUS when INBOX is not among `folders`).
    """
    kwargs = {"allow_private": allow_private, "ca_file": ca_file,
              "allowed_ports": allowed_ports, "timeout": timeout}
    uidvalidity = None
    try:
        with session(params, deadline=timeout, **kwargs) as client:
            for folder in folders:
                opened = examine(client, folder)
                if folder.upper() == "INBOX":
                    uidvalidity = _uidvalidity(opened)
            if uidvalidity is None:
                uidvalidity = _inbox_uidvalidity(client)
            addresses = getattr(client, "checked_addresses", ())
    except Exception as exc:
        return failure(exc, params, timeout=timeout)
    return CheckResult(True, "ok", {"host": params.host, "port": params.port},
                       addresses=addresses, uidvalidity=uidvalidity)


def _uidvalidity(response):
    """The UIDVALIDITY of a SELECT/EXAMINE or STATUS response, or None."""
    value = (response or {}).get(b"UIDVALIDITY")
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _inbox_uidvalidity(client):
    """INBOX's UIDVALIDITY by STATUS, or None when the server will not say."""
    try:
        return _uidvalidity(client.folder_status("INBOX", [b"UIDVALIDITY"]))
    except imap_errors.IMAPClientAbortError:
        raise
    except imap_errors.IMAPClientError:
        return None


def address_key(address):
    """An IP address in one spelling, for comparing (IPv4-mapped IPv6 as IPv4, no zone)."""
    text = str(address).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def host_addresses(host, port, *, allow_private=False, timeout=DEFAULT_TIMEOUT, **_ignored):
    """The checked addresses a host resolves to (as connect() would use them), or () when
    it does not resolve or resolves to an address the guard refuses."""
    try:
        found = resolve(host, port, allow_private=allow_private, timeout=timeout)
    except (ImapError, OSError, UnicodeError, ValueError):
        return ()
    return tuple(dict.fromkeys(address_key(sockaddr[0]) for _family, sockaddr in found))


def list_folders(params, *, allow_private=False, ca_file=None, allowed_ports=DEFAULT_PORTS,
                 timeout=DEFAULT_TIMEOUT):
    """The selectable folders of the mailbox, INBOX first: (names, None) or ([], CheckResult)."""
    kwargs = {"allow_private": allow_private, "ca_file": ca_file,
              "allowed_ports": allowed_ports, "timeout": timeout}
    try:
        with session(params, deadline=timeout, **kwargs) as client:
            listed = client.list_folders()
    except Exception as exc:
        return [], failure(exc, params, timeout=timeout)
    names = []
    for flags, _delimiter, name in listed:
        flags = {f.lower() if isinstance(f, bytes) else f.encode().lower() for f in flags}
        if b"\\noselect" in flags or b"\\nonexistent" in flags:
            continue
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        if name not in names:
            names.append(name)
    names.sort(key=lambda n: (n.upper() != "INBOX", n.lower()))
    return names, None
