"""A small, real OAuth 2.0 authorization server on loopback, in a thread, for tests.

Endpoints (all under ``url``):

* ``GET /authorize``: checks client id, redirect URI and the S256 code challenge, then
  shows a consent page for the signed-in user (``provider.user``) with "Allow" and
  "Deny"; ``POST /authorize`` redirects back with ``code`` + ``state`` (or
  ``error=access_denied``).
* ``POST /token``: ``authorization_code`` (one use, PKCE S256 verifier, same redirect
  URI, client secret) and ``refresh_token`` grants; unknown or revoked refresh tokens
  get ``400 {"error": "invalid_grant"}``. Answers carry an ``id_token`` (JWT, claim
  ``email``) when the scope has ``openid``.
* ``POST /introspect``: RFC 7662, what Dovecot's oauth2 passdb calls
  (``introspection_mode = post``): ``{"active": true, "username": ...}`` for a live
  access token.
* ``GET /userinfo``: ``{"email": ..., "sub": ...}`` for a Bearer access token.
* ``POST /revoke``: RFC 7009, revokes a refresh token and its access tokens.

Tokens are random; ``access_lifetime`` sets expires_in. ``requests`` records
(path, grant_type) for the assertions.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from urllib.parse import urlencode

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OAuthProvider:
    def __init__(self, client_id="test-client", client_secret="test-secret"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.user = None  # the address the "signed-in" provider user has
        self.access_lifetime = 3600
        self.redirect_uris: set[str] = set()
        self.codes: dict[str, dict] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server = None
        self._thread = None
        self.url = ""

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "OAuthProvider":
        self._server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._server.server_close()
            self._server = None

    # ---------------------------------------------------------------- helpers
    def settings(self, key: str, redirect_uri: str | None = None, **extra) -> dict:
        """App settings pointing provider `key` (microsoft/google/generic) here."""
        if redirect_uri:
            self.redirect_uris.add(redirect_uri)
        prefix = f"OAUTH_{key.upper()}_"
        values = {
            "CLIENT_ID": self.client_id,
            "CLIENT_SECRET": self.client_secret,
            "AUTHORIZE_URL": f"{self.url}/authorize",
            "TOKEN_URL": f"{self.url}/token",
        }
        values.update(extra)
        return {prefix + name: value for name, value in values.items()}

    def grant(self, login: str, scope: str = "imap") -> dict:
        """Tokens for `login` as if it had consented (tests that skip the browser)."""
        with self.lock:
            return self._issue(login, scope, new_refresh=True)

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens.values():
                token["expires"] = 0

    def revoke_all(self, login: str) -> None:
        """The user withdraws consent at the provider: every token of theirs dies."""
        with self.lock:
            for store in (self.refresh_tokens, self.access_tokens):
                for token in list(store):
                    if store[token]["login"] == login:
                        del store[token]

    def count(self, path: str, grant: str = "") -> int:
        return sum(1 for p, g in self.requests if p == path and (not grant or g == grant))

    def _issue(self, login, scope, *, new_refresh, refresh_token=None):
        access = "at-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = {"login": login, "expires": time.time() + self.access_lifetime,
                                      "refresh": None}
        answer = {"access_token": access, "token_type": "Bearer",
                  "expires_in": self.access_lifetime, "scope": scope}
        if new_refresh:
            refresh_token = "rt-" + secrets.token_urlsafe(32)
            self.refresh_tokens[refresh_token] = {"login": login, "scope": scope}
            answer["refresh_token"] = refresh_token
        self.access_tokens[access]["refresh"] = refresh_token
        if "openid" in scope.split():
            header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            claims = _b64(json.dumps({"iss": self.url, "aud": self.client_id, "sub": login,
                                      "email": login, "iat": int(time.time())}).encode())
            answer["id_token"] = f"{header}.{claims}."
        return answer

    # ------------------------------------------------------------------- WSGI
    def wsgi(self, environ, start_response):
        request = Request(environ)
        grant = request.form.get("grant_type", "") if request.method == "POST" else ""
        with self.lock:
            self.requests.append((request.path, grant))
        handler = {
            ("GET", "/authorize"): self._authorize_page,
            ("POST", "/authorize"): self._authorize_decision,
            ("POST", "/token"): self._token,
            ("POST", "/introspect"): self._introspect,
            ("GET", "/userinfo"): self._userinfo,
            ("POST", "/revoke"): self._revoke,
        }.get((request.method, request.path))
        response = handler(request) if handler else Response("not found", status=404)
        return response(environ, start_response)

    @staticmethod
    def _json(data, status=200):
        return Response(json.dumps(data), status=status, mimetype="application/json",
                        headers={"Cache-Control": "no-store"})

    def _authorize_page(self, request):
        args = request.args
        problem = None
        if args.get("client_id") != self.client_id:
            problem = "unknown client"
        elif args.get("redirect_uri") not in self.redirect_uris:
            problem = "redirect URI not registered"
        elif args.get("response_type") != "code":
            problem = "unsupported response_type"
        elif args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
            problem = "PKCE S256 required"
        elif self.user is None:
            problem = "nobody signed in at the provider"
        if problem:
            return Response(f"<h1>Error</h1><p>{html.escape(problem)}</p>", status=400,
                            mimetype="text/html")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in args.items())
        page = f"""<!doctype html><html><head><title>Test provider consent</title></head><body>
<h1>Allow access to your mailbox?</h1>
<p>Signed in as <b id="who">{html.escape(self.user)}</b>. The app asks for: {html.escape(args.get("scope", ""))}</p>
<form method="post" action="/authorize">{hidden}
<button name="decision" value="allow">Allow</button>
<button name="decision" value="deny">Deny</button></form></body></html>"""
        return Response(page, mimetype="text/html")

    def _authorize_decision(self, request):
        form = request.form
        redirect_uri = form.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris or form.get("client_id") != self.client_id:
            return Response("bad request", status=400)
        if form.get("decision") != "allow":
            query = {"error": "access_denied", "state": form.get("state", "")}
        else:
            code = "code-" + secrets.token_urlsafe(16)
            with self.lock:
                self.codes[code] = {
                    "login": self.user, "scope": form.get("scope", ""),
                    "redirect_uri": redirect_uri, "challenge": form.get("code_challenge"),
                    "expires": time.time() + 120,
                }
            query = {"code": code, "state": form.get("state", "")}
        sep = "&" if "?" in redirect_uri else "?"
        return Response(status=302, headers={"Location": redirect_uri + sep + urlencode(query)})

    def _client_ok(self, form):
        return (form.get("client_id") == self.client_id
                and form.get("client_secret") == self.client_secret)

    def _token(self, request):
        form = request.form
        if not self._client_ok(form):
            return self._json({"error": "invalid_client"}, 401)
        grant = form.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)  # one use only
                if code is None or code["expires"] < time.time():
                    return self._json({"error": "invalid_grant"}, 400)
                if form.get("redirect_uri") != code["redirect_uri"]:
                    return self._json({"error": "invalid_grant",
                                       "error_description": "redirect_uri mismatch"}, 400)
                verifier = form.get("code_verifier", "")
                if _b64(hashlib.sha256(verifier.encode()).digest()) != code["challenge"]:
                    return self._json({"error": "invalid_grant",
                                       "error_description": "PKCE verification failed"}, 400)
                return self._json(self._issue(code["login"], code["scope"], new_refresh=True))
            if grant == "refresh_token":
                token = form.get("refresh_token", "")
                found = self.refresh_tokens.get(token)
                if found is None:
                    return self._json({"error": "invalid_grant"}, 400)
                return self._json(self._issue(found["login"], found["scope"],
                                              new_refresh=False, refresh_token=token))
        return self._json({"error": "unsupported_grant_type"}, 400)

    def _live(self, token):
        found = self.access_tokens.get(token or "")
        if found is None or found["expires"] < time.time():
            return None
        return found

    def _introspect(self, request):
        with self.lock:
            found = self._live(request.form.get("token"))
        if found is None:
            return self._json({"active": False})
        return self._json({"active": True, "username": found["login"],
                           "client_id": self.client_id})

    def _userinfo(self, request):
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            found = self._live(token)
        if found is None:
            return self._json({"error": "invalid_token"}, 401)
        return self._json({"sub": found["login"], "email": found["login"]})

    def _revoke(self, request):
        token = request.form.get("token", "")
        with self.lock:
            if self.refresh_tokens.pop(token, None) is not None:
                for access in [a for a, t in self.access_tokens.items() if t["refresh"] == token]:
                    del self.access_tokens[access]
            self.access_tokens.pop(token, None)
        return Response(status=200)
