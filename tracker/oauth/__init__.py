"""Mailboxes behind OAuth 2.0: providers, the authorization-code flow with PKCE, tokens.

- Providers (tracker.oauth.providers) are set by the operator in the environment:
  without a client id a provider is not offered.
- The browser flow (tracker.views.credentials) keeps the PKCE verifier and a random
  `state` in the user's session; the callback must bring the same state back, once.
- The refresh token, and the current access token with its expiry, are stored on the
  Credential as Fernet tokens (tracker.crypto), like passwords.
- The worker asks `TokenSource` for an access token when it signs in to IMAP: a cached
  one that is still valid, or a new one from the refresh token. A refresh answered
  `invalid_grant` marks the credential withdrawn (code "oauth_revoked", not retried
  until the owner signs in again); a network failure is "oauth_unavailable", which
  the sync retries like any network trouble.
"""

import base64
import hashlib
import json
import logging
import secrets
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

from flask import current_app

from tracker import crypto
from tracker.extensions import db
from tracker.imap import ImapError
from tracker.models.base import utcnow
from tracker.oauth.providers import Provider, enabled_providers, get_provider  # noqa: F401

logger = logging.getLogger(__name__)

# An access token is refreshed this long before the provider says it expires.
EXPIRY_MARGIN = timedelta(seconds=60)
# When the provider does not say (expires_in missing).
DEFAULT_LIFETIME = 3600


class OAuthRevoked(ImapError):
    """The provider refused the refresh token (invalid_grant): the owner must sign in again."""

    code = "oauth_revoked"


class OAuthUnavailable(ImapError):
    """The provider could not be reached or answered with an error: try again later."""

    code = "oauth_unavailable"


class OAuthRefused(Exception):
    """The provider refused an authorization code (the browser flow shows the error)."""

    def __init__(self, error, description=""):
        super().__init__(error)
        self.error = error
        self.description = description


# ------------------------------------------------------------------ PKCE

def new_verifier():
    """A PKCE code verifier (RFC 7636: 43-128 characters of the unreserved set)."""
    return secrets.token_urlsafe(64)


def challenge(verifier):
    """The S256 code challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def origin(url):
    """scheme://host[:port] of a URL, for a Content-Security-Policy source."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def authorization_url(provider, *, redirect_uri, state, verifier):
    """Where the browser goes to sign in and consent."""
    query = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(provider.scopes),
        "state": state,
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
    }
    query.update(provider.extra_authorize_params)
    separator = "&" if "?" in provider.authorize_url else "?"
    return provider.authorize_url + separator + urllib.parse.urlencode(query)


# ------------------------------------------------------------ HTTP helpers

def _timeout():
    return float(current_app.config.get("IMAP_TIMEOUT_SECONDS", 10))


def _post(url, fields):
    """POST a form; (status, JSON object). Network failures raise OAuthUnavailable."""
    body = urllib.parse.urlencode(fields).encode("ascii")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    return _send(request)


def _get_json(url, access_token):
    request = urllib.request.Request(url, headers={
        "Authorization": f"Bearer {access_token}", "Accept": "application/json"})
    return _send(request)


def _send(request):
    host = urllib.parse.urlsplit(request.full_url).hostname or "?"
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as response:
            status, raw = response.status, response.read(1_000_000)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(1_000_000)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise OAuthUnavailable(detail=f"{host}: {type(reason).__name__}") from None
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OAuthUnavailable(detail=f"{host}: HTTP {status}")
    return status, data


def _client_fields(provider):
    fields = {"client_id": provider.client_id}
    if provider.client_secret:
        fields["client_secret"] = provider.client_secret
    return fields


# ------------------------------------------------------------------ grants

def exchange_code(provider, *, code, redirect_uri, verifier):
    """Trade an authorization code (and its PKCE verifier) for tokens: the token answer."""
    try:
        status, data = _post(provider.token_url, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier, **_client_fields(provider)})
    except OAuthUnavailable as exc:
        raise OAuthRefused("unavailable", exc.params.get("detail", "")) from None
    if status != 200 or not data.get("access_token"):
        raise OAuthRefused(str(data.get("error") or f"HTTP {status}"),
                           str(data.get("error_description") or ""))
    if not data.get("refresh_token"):
        # Without offline access the worker could read the mailbox for an hour only.
        raise OAuthRefused("no_refresh_token")
    return data


def login_of(provider, tokens):
    """The mailbox's address, from the provider's answer (id_token, else userinfo)."""
    claims = _id_token_claims(tokens.get("id_token"))
    for name in provider.login_claims:
        value = claims.get(name)
        if isinstance(value, str) and "@" in value:
            return value.strip().lower()
    if provider.userinfo_url:
        try:
            status, data = _get_json(provider.userinfo_url, tokens["access_token"])
        except OAuthUnavailable as exc:
            raise OAuthRefused("unavailable", exc.params.get("detail", "")) from None
        if status == 200:
            for name in provider.login_claims:
                value = data.get(name)
                if isinstance(value, str) and value.strip():
                    return value.strip().lower()
    raise OAuthRefused("no_login")


def _id_token_claims(id_token):
    """The claims of an ID token received straight from the token endpoint over TLS.

    OpenID Connect Core 3.1.3.7 lets a client that got the ID token directly from the
    token endpoint rely on the TLS server check instead of the signature.
    """
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return {}
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def store_tokens(credential, tokens, now=None):
    """Keep the token answer on the credential, encrypted; clears a withdrawn mark."""
    now = now or utcnow()
    if tokens.get("refresh_token"):
        credential.refresh_token = tokens["refresh_token"]
    credential.access_token = tokens["access_token"]
    try:
        lifetime = int(tokens.get("expires_in") or DEFAULT_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    credential.access_token_expires_at = now + timedelta(seconds=max(lifetime, 0))
    credential.oauth_revoked_at = None


def refresh(credential, provider):
    """A new access token from the refresh token, stored (and committed) on the credential."""
    try:
        refresh_token = credential.refresh_token
    except crypto.InvalidToken:
        raise OAuthRevoked() from None
    status, data = _post(provider.token_url, {
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        **_client_fields(provider)})
    if status == 200 and data.get("access_token"):
        store_tokens(credential, data)
        db.session.commit()
        return data["access_token"]
    error = data.get("error")
    if status in (400, 401) and error in ("invalid_grant", "unauthorized_client",
                                          "invalid_client"):
        # Consent withdrawn, password changed, token expired or revoked: only a new
        # sign-in helps. Remember it so that later syncs do not ask again.
        logger.info("OAuth refresh refused for credential %s: %s", credential.id, error)
        credential.mark_withdrawn(utcnow())
        db.session.commit()
        raise OAuthRevoked()
    host = urllib.parse.urlsplit(provider.token_url).hostname or "?"
    raise OAuthUnavailable(detail=f"{host}: HTTP {status}" + (f" {error}" if error else ""))


def revoke(credential):
    """Tell the provider (RFC 7009) that the refresh token is no longer wanted, when the
    credentials are deleted. Best effort: the deletion happens whatever it answers."""
    provider = get_provider(credential.oauth_provider)
    if provider is None or not provider.revoke_url or not credential.refresh_token_token:
        return False
    try:
        token = credential.refresh_token
        status, _data = _post_revoke(provider, token)
    except (crypto.InvalidToken, OAuthUnavailable) as exc:
        logger.warning("OAuth revocation for credential %s failed: %s", credential.id,
                       type(exc).__name__)
        return False
    return status == 200


def _post_revoke(provider, token):
    body = urllib.parse.urlencode({"token": token, "token_type_hint": "refresh_token",
                                   **_client_fields(provider)}).encode("ascii")
    request = urllib.request.Request(provider.revoke_url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    host = urllib.parse.urlsplit(provider.revoke_url).hostname or "?"
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        raise OAuthUnavailable(detail=host) from None


class TokenSource:
    """What imap.ServerParams.token calls: a valid access token for one credential.

    A refresh commits the database session (the new tokens, or the withdrawn mark), so
    it is called only where nothing else is pending: the sync signs in right after
    committing its run, and the views check credentials before applying a form.
    """

    def __init__(self, credential):
        self.credential = credential
        self._fresh = None

    def __call__(self, fresh=False):
        credential = self.credential
        if credential.oauth_revoked_at is not None:
            raise OAuthRevoked()
        provider = get_provider(credential.oauth_provider)
        if provider is None:
            raise OAuthUnavailable(detail=f"{credential.oauth_provider}: not configured")
        if fresh and self._fresh is not None:
            return self._fresh  # just refreshed: another refresh would not help
        if not fresh:
            cached = credential.valid_access_token(utcnow() + EXPIRY_MARGIN)
            if cached:
                return cached
        self._fresh = refresh(credential, provider)
        return self._fresh
