"""The browser part of the authorization-code flow with PKCE.

The session keeps, per flow, only its `state` (random, 32 bytes), the provider, the
user and the account they were in, which credentials to update (None: new ones), where to go back and when it
started. The PKCE verifier is never stored: it is an HMAC of the state under
SECRET_KEY, so the signed (readable) session cookie does not reveal it. A callback is
accepted once, within FLOW_SECONDS, for the user who started it.
"""

import base64
import hashlib
import hmac
import secrets
import time

from flask import current_app, request, session, url_for

from tracker.oauth import authorization_url

SESSION_KEY = "oauth_flows"
FLOW_SECONDS = 600
MAX_FLOWS = 5


def redirect_uri():
    """The callback address to register at the provider: BASE_URL + /credentials/oauth/callback."""
    base = current_app.config.get("BASE_URL") or request.url_root
    return base.rstrip("/") + url_for("credentials.oauth_callback")


def verifier_for(state):
    key = current_app.config["SECRET_KEY"].encode("utf-8")
    digest = hmac.new(key, b"oauth-pkce:" + state.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest + digest[:16]).rstrip(b"=").decode("ascii")


def start(provider, owner, *, credential_id=None, next_url=None):
    """Remember a new flow in the session; return the provider's authorization URL."""
    state = secrets.token_urlsafe(32)
    now = time.time()
    flows = {key: flow for key, flow in (session.get(SESSION_KEY) or {}).items()
             if isinstance(flow, dict) and now - flow.get("at", 0) < FLOW_SECONDS}
    # Keep the newest few only: the cookie stays small.
    for key in sorted(flows, key=lambda k: flows[k]["at"])[:-(MAX_FLOWS - 1) or None]:
        flows.pop(key)
    flows[state] = {"provider": provider.key, "user": owner, "credential": credential_id,
                    "next": next_url, "at": now}
    session[SESSION_KEY] = flows
    return authorization_url(provider, redirect_uri=redirect_uri(), state=state,
                             verifier=verifier_for(state))


def finish(state, owner):
    """The flow of `state`, taken out of the session (so it works once), or None when it
    is unknown, expired or someone else's."""
    flows = dict(session.get(SESSION_KEY) or {})
    if not isinstance(state, str) or not state:
        return None
    flow = flows.pop(state, None)
    session[SESSION_KEY] = flows
    if not isinstance(flow, dict) or flow.get("user") != owner:
        return None
    if time.time() - flow.get("at", 0) >= FLOW_SECONDS:
        return None
    return flow
