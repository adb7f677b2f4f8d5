"""A real SMTP server on a free loopback port (aiosmtpd), recording what it receives."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.services.ports import free_port


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.server.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.server.lock:
            self.server.messages.append({
                "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
                "message": message, "authenticated": session.authenticated,
                "tls": session.ssl is not None,
            })
        return "250 Message accepted"


class SmtpServer:
    """smtp://127.0.0.1:<port>; with login/password it offers AUTH (and records whether the
    client signed in); with a certificate (cert, key) it requires STARTTLS and AUTH."""

    def __init__(self, login=None, password=None, certificate=None, implicit_tls=False):
        self.host, self.port = "127.0.0.1", free_port()
        self.messages, self.refuse, self.lock = [], set(), threading.Lock()
        self.login, self.password = login, password
        options = {}
        starttls = certificate is not None and not implicit_tls
        if login:
            # AUTH offered (and checked); required only with STARTTLS (aiosmtpd warns
            # otherwise, and cannot tell an implicit TLS connection from a plain one).
            options.update(authenticator=self._authenticate, auth_required=starttls,
                           auth_require_tls=starttls)
        if certificate:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*map(str, certificate))
            if implicit_tls:
                options.update(ssl_context=context)
            else:
                options.update(tls_context=context, require_starttls=True)
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                     **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.login
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok)

    def url(self, scheme="smtp", query=""):
        auth = f"{self.login}:{self.password}@" if self.login else ""
        return f"{scheme}://{auth}{self.host}:{self.port}" + (f"?{query}" if query else "")

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        """Stop listening (the port then refuses connections); stopping twice is harmless."""
        if self.controller._thread is not None:
            self.controller.stop()

    def wait_for(self, count=1, seconds=10):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{count} message(s) expected, {len(self.messages)} received")
