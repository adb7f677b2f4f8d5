"""The IMAP connection layer against the real Dovecot: checks, failures, the address guard."""

import socket
import threading
import time
from types import SimpleNamespace

import pytest

from tests.services.ports import free_port
from tracker import imap
from tracker.imap import ServerParams


def params_for(dovecot, login, password, *, tls=True, host=None, port=None):
    return ServerParams(
        host=host or dovecot.host,
        port=port or (dovecot.tls_port if tls else dovecot.port),
        security="ssl" if tls else "starttls",
        login=login,
        password=password,
    )


@pytest.fixture
def opts(dovecot):
    """Connection options as the tests' app uses them: loopback allowed, the test CA trusted."""
    return {
        "allow_private": True,
        "ca_file": str(dovecot.ca_path),
        "allowed_ports": (993, 143, dovecot.port, dovecot.tls_port),
        "timeout": 5,
    }


def test_check_succeeds_over_tls_and_starttls(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    for tls in (True, False):
        result = imap.check_connection(params_for(dovecot, login, password, tls=tls), **opts)
        assert result.ok, result.message
        assert (result.code, result.message) == ("ok", "Integration works.")


def test_wrong_password(ctx, dovecot, imap_user, opts):
    login, _password = imap_user
    result = imap.check_connection(params_for(dovecot, login, "not-the-password"), **opts)
    assert (result.ok, result.code) == (False, "auth_failed")
    assert result.message.startswith("Wrong login or password")


def test_wrong_password_with_outlook_says_why(ctx, dovecot, imap_user, opts):
    login, _password = imap_user
    params = ServerParams(dovecot.host, dovecot.tls_port, "ssl", login, "nope", service="outlook")
    result = imap.check_connection(params, **opts)
    assert result.code == "auth_failed"
    assert "no longer accept passwords over IMAP since September 2024" in result.message


def test_closed_port_is_refused(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    port = free_port()
    opts["allowed_ports"] += (port,)
    result = imap.check_connection(params_for(dovecot, login, password, port=port), **opts)
    assert result.code == "refused"
    assert result.message == f"Connection refused: nothing accepts connections on 127.0.0.1, port {port}."


def test_self_signed_server_is_rejected_by_default_and_accepted_with_its_ca(
        ctx, dovecot, imap_user, opts):
    login, password = imap_user
    for tls in (True, False):
        params = params_for(dovecot, login, password, tls=tls)
        rejected = imap.check_connection(params, **dict(opts, ca_file=None))
        assert rejected.code == "tls_rejected", rejected.message
        assert rejected.message.startswith("TLS certificate rejected: 127.0.0.1")
        assert imap.check_connection(params, **opts).ok


def test_certificate_name_is_checked_against_the_host_name(ctx, dovecot, imap_user, opts):
    """The socket goes to the checked address, yet TLS verifies the name the user typed."""
    login, password = imap_user
    # localhost is in the certificate; the machine's own name reaches the same server but is not.
    assert imap.check_connection(params_for(dovecot, login, password, host="localhost"), **opts).ok
    other = socket.gethostname().lower()
    try:
        resolves_to_loopback = socket.gethostbyname(other) == "127.0.0.1"
    except OSError:
        resolves_to_loopback = False
    if other == "localhost" or not resolves_to_loopback:
        pytest.skip("no second name for 127.0.0.1 on this machine")
    result = imap.check_connection(params_for(dovecot, login, password, host=other), **opts)
    assert result.code == "tls_rejected"
    assert "Hostname mismatch" in result.message


def test_missing_folder(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    dovecot.create_folder(login, "Spam")
    params = params_for(dovecot, login, password)
    assert imap.check_connection(params, ["INBOX", "Spam"], **opts).ok
    result = imap.check_connection(params, ["INBOX", "Nope"], **opts)
    assert result.code == "folder_missing"
    assert result.message == "Folder missing: there is no folder “Nope” in this mailbox."


def test_list_folders(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    for name in ("Spam", "Архив", "Leads"):
        dovecot.create_folder(login, name)
    names, error = imap.list_folders(params_for(dovecot, login, password), **opts)
    assert error is None
    assert names == ["INBOX", "Leads", "Spam", "Архив"]
    names, error = imap.list_folders(params_for(dovecot, login, "wrong"), **opts)
    assert names == [] and error.code == "auth_failed"


def test_examine_changes_nothing(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    uid = dovecot.deliver(login, b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n")
    assert imap.check_connection(params_for(dovecot, login, password), **opts).ok
    assert b"\\Seen" not in dovecot.flags(login, "INBOX", uid)


def test_connect_returns_a_logged_in_client(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    client = imap.connect(params_for(dovecot, login, password, tls=False), **opts)
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    finally:
        client.logout()


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("169.254.169.254", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("fd00::1", "fd00::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("224.0.0.1", "224.0.0.1"),
        ("localhost", None),
    ],
)
def test_address_guard_refuses_non_public_addresses(ctx, host, address):
    params = ServerParams(host.strip("[]"), 993, "ssl", "me@example.com", "secret")
    started = time.monotonic()
    result = imap.check_connection(params, allow_private=False, timeout=3)
    assert result.code == "blocked_address"
    assert "private or reserved address" in result.message
    if address:
        assert f"({address})" in result.message
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True), ("2606:4700::1111", True), ("192.168.1.1", False),
        ("172.16.0.1", False), ("100.64.0.1", False), ("fe80::1", False), ("ff02::1", False),
        ("::", False), ("240.0.0.1", False), ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True), ("2002:7f00:1::1", False), ("fec0::1", False),
        ("64:ff9b::a00:1", False), ("64:ff9b::5db8:d822", True), ("64:ff9b:1::1", False),
    ],
)
def test_is_public(address, public):
    assert imap.is_public(address) is public


def test_port_outside_the_allowed_list_is_refused(ctx):
    params = ServerParams("imap.example.com", 25, "ssl", "me@example.com", "secret")
    result = imap.check_connection(params, allowed_ports=(993, 143))
    assert result.code == "port_not_allowed"
    assert result.message == "Port 25 is not allowed; use one of: 143, 993."


def test_unknown_host(ctx, opts):
    params = ServerParams("no-such-host.invalid", 993, "ssl", "me@example.com", "secret")
    result = imap.check_connection(params, **opts)
    assert result.code == "host_not_found"
    assert "“no-such-host.invalid” does not resolve" in result.message


def test_line_breaks_in_the_password_are_never_sent(ctx, dovecot, imap_user, opts):
    login, _password = imap_user
    result = imap.check_connection(params_for(dovecot, login, "x\r\nA1 DELETE INBOX"), **opts)
    assert result.code == "unsupported_characters"


@pytest.fixture
def silent_server():
    """A TCP server that accepts and then says nothing (or a byte now and then)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    drip = {"every": None}
    server = SimpleNamespace(port=listener.getsockname()[1], drip=drip)
    conns = []

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)
            if drip["every"]:
                threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn):
        # A greeting that never ends: one byte at a time, each within the read timeout.
        for byte in b"* OK " + b"x" * 1000:
            if stop.wait(drip["every"]):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(timeout=2)
    for conn in conns:
        conn.close()
    listener.close()


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_a_silent_server_times_out(ctx, silent_server, opts, security):
    port = silent_server.port
    params = ServerParams("127.0.0.1", port, security, "me@example.com", "secret")
    started = time.monotonic()
    result = imap.check_connection(params, **dict(opts, allowed_ports=(port,), timeout=1))
    assert result.code == "timeout"
    assert result.message == "Timed out: 127.0.0.1 did not answer within 1 seconds."
    assert time.monotonic() - started < 2


def test_a_trickling_server_is_cut_off_at_the_deadline(ctx, silent_server, opts):
    """Each byte arrives within the read timeout; the whole check still stops in time."""
    silent_server.drip["every"] = 0.2
    port = silent_server.port
    params = ServerParams("127.0.0.1", port, "starttls", "me@example.com", "secret")
    started = time.monotonic()
    result = imap.check_connection(params, **dict(opts, allowed_ports=(port,), timeout=1.5))
    assert result.code == "timeout"
    assert time.monotonic() - started < 2.5


def test_tls_to_a_plain_port_is_a_tls_failure(ctx, dovecot, imap_user, opts):
    login, password = imap_user
    params = ServerParams(dovecot.host, dovecot.port, "ssl", login, password)
    result = imap.check_connection(params, **opts)
    assert result.code == "tls_failed"


def test_password_stays_out_of_repr(dovecot):
    assert "hunter2" not in repr(ServerParams("h", 993, "ssl", "a@b.c", "hunter2"))


def test_a_check_says_which_inbox_it_reached(ctx, dovecot, imap_user, opts):
    """The checked addresses and INBOX's UIDVALIDITY: the same for both names of one server."""
    login, password = imap_user
    by_address = imap.check_connection(params_for(dovecot, login, password), **opts)
    by_name = imap.check_connection(params_for(dovecot, login, password, host="localhost"),
                                    **opts)
    assert by_address.ok and by_name.ok
    assert by_address.addresses == ("127.0.0.1",)
    assert "127.0.0.1" in by_name.addresses
    assert by_address.uidvalidity and by_address.uidvalidity == by_name.uidvalidity
    # Without INBOX among the folders checked, a STATUS reads it.
    dovecot.create_folder(login, "Spam")
    spam_only = imap.check_connection(params_for(dovecot, login, password), ["Spam"], **opts)
    assert spam_only.ok and spam_only.uidvalidity == by_address.uidvalidity
    # Another user's INBOX on the same server is another inbox.
    dovecot.add_user("someone-else-" + login, password)
    other = imap.check_connection(params_for(dovecot, "someone-else-" + login, password),
                                  **opts)
    assert other.ok and other.addresses == by_address.addresses
    # Nothing of this is kept in the stored parameters of the status message.
    assert set(by_address.params) == {"host", "port"}


def test_a_failed_check_reads_no_identity(ctx, dovecot, imap_user, opts):
    login, _password = imap_user
    result = imap.check_connection(params_for(dovecot, login, "wrong"), **opts)
    assert not result.ok and result.addresses == () and result.uidvalidity is None


def test_host_addresses_pass_the_same_guard(ctx):
    assert imap.host_addresses("127.0.0.1", 993, allow_private=True) == ("127.0.0.1",)
    assert "127.0.0.1" in imap.host_addresses("localhost", 993, allow_private=True)
    # Refused by the guard, or not resolving: no address, no error.
    assert imap.host_addresses("127.0.0.1", 993) == ()
    assert imap.host_addresses("no-such-host.invalid", 993, allow_private=True, timeout=2) == ()
    assert imap.address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert imap.address_key("fe80::1%eth0") == "fe80::1"
