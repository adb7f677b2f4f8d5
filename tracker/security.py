"""Sign-in plumbing and the HTTP headers every admin response carries."""

from flask import request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l

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
    app.session_interface = SessionInterface()


@login_manager.user_loader
def load_user(user_id):
    from tracker.models import User

    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    return user if user is not None and user.active else None


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
