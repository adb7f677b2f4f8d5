"""Sign-in plumbing and the HTTP headers every admin response carries."""

import hmac
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

from functools import wraps

import werkzeug.security
from flask import abort, current_app, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user

from tracker.extensions import db, login_manager

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def init_app(app):
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please sign in to open this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    app.after_request(_security_headers)
    app.before_request(_check_role)
    app.add_template_global(can)
    app.session_interface = SessionInterface()


@login_manager.user_loader
def load_user(user_id):
    """The user of a session or remember-me cookie, on every request.

    Both carry "<id>:<session token>:<sign-in time>" (User.get_id). Refused: a
    session made before the user's token changed (sign-out, end_all_sessions),
    one without a token, and one signed in longer ago than REMEMBER_COOKIE_DURATION
    (the browser drops the cookie then; a copy of it is refused here too).
    """
    from tracker.models import User

    parts = str(user_id).split(":")
    if len(parts) != 3:
        return None
    user_key, token, signed_in = parts
    try:
        key, signed_in = int(user_key), int(signed_in)
    except ValueError:
        return None
    if not 0 < key < 2**31:  # user.id is a 32-bit integer on PostgreSQL
        return None
    max_age = current_app.config["REMEMBER_COOKIE_DURATION"]
    if isinstance(max_age, timedelta):
        max_age = max_age.total_seconds()
    if not -60 < time.time() - signed_in < max_age:
        return None
    user = db.session.get(User, key)
    if user is None or not user.active or not token or not user.session_token:
        return None
    if not hmac.compare_digest(token.encode(), user.session_token.encode()):
        return None
    user.use_membership(current_membership(user))
    return user


# The session key naming the account the user works in (switched in tracker.views.team).
ACCOUNT_SESSION_KEY = "account_id"


def current_membership(user):
    """The membership this session works in: the account chosen with the switcher when
    the user still belongs to it, else the home account's, else the first; None when
    the user belongs to no account any more."""
    memberships = user.memberships
    chosen = session.get(ACCOUNT_SESSION_KEY)
    for wanted in (chosen, user.home_account_id):
        for membership in memberships:
            if membership.account_id == wanted:
                return membership
    return memberships[0] if memberships else None


# Who may open what (see README, "Teammates"). Each admin blueprint has the roles
# that reach every one of its pages; a view may say otherwise with require_role or
# no_role_needed. Blueprints not listed check on their own (sign-in, the token API,
# the operators' pages).
MEMBERS = ("owner", "editor", "viewer")
EDITORS = ("owner", "editor")
OWNERS = ("owner",)
BLUEPRINT_ROLES = {
    "main": MEMBERS,
    "reports": MEMBERS,
    "sites": EDITORS,
    "mailboxes": EDITORS,
    "blocks": EDITORS,
    "rules": EDITORS,
    "credentials": OWNERS,
    "webhooks": OWNERS,
    "apitokens": OWNERS,
    "team": OWNERS,
    "activity": OWNERS,
}


def require_role(*roles):
    """A view only users with one of roles in the current account may open (else 403;
    anonymous users are sent to sign in). The role check of before_request reads it too."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapper.required_roles = tuple(roles)
        return wrapper

    return decorate


def no_role_needed(view):
    """A view of a role-checked blueprint that any visitor may open (it checks what it
    needs itself: the account switcher, the invitation link)."""
    view.required_roles = None
    return view


def roles_for(endpoint):
    """The roles that may open endpoint; None when no role is needed."""
    view = current_app.view_functions.get(endpoint)
    if view is not None and hasattr(view, "required_roles"):
        return view.required_roles
    return BLUEPRINT_ROLES.get(endpoint.split(".", 1)[0] if "." in endpoint else "")


def can(endpoint):
    """True when the current user may open endpoint (templates hide what they cannot)."""
    roles = roles_for(endpoint)
    if roles is None:
        return True
    return current_user.is_authenticated and current_user.role in roles


def _check_role():
    """Every request to a role-checked page: signed in, and a role that may open it."""
    if request.endpoint is None:
        return None
    roles = roles_for(request.endpoint)
    if roles is None:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role not in roles:
        abort(403)
    return None


def end_all_sessions(user):
    """End every session and remember-me cookie of the user (the caller commits).

    Sign-out calls it: a copy of the session cookie or the remember-me cookie
    taken before it no longer signs anyone in.
    """
    from tracker.models.accounts import new_session_token

    user.session_token = new_session_token()


def end_other_sessions(user):
    """End the user's sessions on every other browser; this request's stays signed in.

    For a password change: a new session token, and this browser's session (and its
    remember-me cookie, if it had one) reissued with it. Commits.
    """
    remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
    end_all_sessions(user)
    db.session.commit()
    login_user(user, remember=remembered)


# Sign-in time must not tell whether an email has an account: an unknown email is
# checked against a hash made the same way (and at the same cost) as real ones, one per
# PASSWORD_HASH_METHOD.
_dummy_hashes = {}


def verify_password(user, password):
    """True when the user exists, is active and the password is theirs.

    The password hash is computed exactly once whatever the outcome.
    """
    if user is None:
        method = current_app.config["PASSWORD_HASH_METHOD"]
        if method not in _dummy_hashes:
            _dummy_hashes[method] = werkzeug.security.generate_password_hash(
                "not a password of anyone", method=method)
        werkzeug.security.check_password_hash(_dummy_hashes[method], password)
        return False
    matches = werkzeug.security.check_password_hash(user.password_hash, password)
    return matches and user.active


# What browsers (WHATWG URL) and werkzeug drop or treat specially in a URL: C0
# controls with space and DEL (tab, CR and LF are removed anywhere by browsers).
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def safe_local_url(target, prefix="/"):
    """The target when it is a path of this site under prefix, else None.

    For ?next= and every other address we redirect or link to from user input:
    the login redirect, htmx's HX-Redirect and the Cancel links. Refused: anything
    with a control character or whitespace (a browser would drop a tab or a newline
    and turn "/\t/evil.example" into "//evil.example"), a backslash (a slash to
    browsers), "//" at the start (another host), a scheme or a host, and anything
    not under prefix.
    """
    if not isinstance(target, str) or not target or len(target) > 2000:
        return None
    if _CONTROL.search(target) or "\\" in target:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    if not target.startswith(prefix):
        return None
    return target


def _security_headers(response):
    if request.blueprint == "api":
        return response  # the public API sets its own (tracker/views/api.py)
    headers = response.headers
    if (headers.get("Content-Type") or "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


class SessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, plus: over HTTPS every cookie we set is Secure.

    It runs last, after Flask-Login has set its remember cookie, so it covers both
    whatever SESSION_COOKIE_SECURE says (useful behind a TLS proxy with PROXY_COUNT).
    """

    def open_session(self, app, request):
        # The public API is cookie-less: no session to read or write.
        if request.path.startswith("/api/"):
            return None
        return super().open_session(app, request)

    def save_session(self, app, session, response):
        super().save_session(app, session, response)
        if not request.is_secure:
            return
        cookies = response.headers.getlist("Set-Cookie")
        response.headers.remove("Set-Cookie")
        for cookie in cookies:
            if "; secure" not in cookie.lower():
                cookie += "; Secure"
            response.headers.add("Set-Cookie", cookie)
