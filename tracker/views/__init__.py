"""Blueprints, navigation and error pages."""

from flask import jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

from tracker.domains import display_domain
from tracker.security import can
from tracker.views import api, auth, blocks, credentials, mailboxes, main, reports, rules, sites
from tracker.views import api_v1, apitokens
from tracker.views import webhooks
from tracker.views import ops
from tracker.views import team

BLUEPRINTS = [
    main.bp, auth.bp, sites.bp, mailboxes.bp, credentials.bp, blocks.bp, rules.bp, reports.bp,
    api.bp, api_v1.bp, apitokens.bp,
]
BLUEPRINTS.append(webhooks.bp)
BLUEPRINTS.append(ops.bp)
from tracker.views import activity  # noqa: E402
BLUEPRINTS.append(activity.bp)
BLUEPRINTS.append(team.bp)

# Admin sections in menu order; a section shows once its blueprint exists.
SECTIONS = [
    ("main.index", _l("Dashboard")),
    ("reports.emails", _l("Emails")),
    ("sites.index", _l("Sites")),
    ("mailboxes.index", _l("Mailboxes")),
    ("credentials.index", _l("Credentials")),
    ("blocks.index", _l("Blocks")),
    ("rules.index", _l("Rules")),
]

ERRORS = {
    400: _l("The request could not be understood."),
    403: _l("You do not have access to this page."),
    404: _l("This page does not exist, or it belongs to another account."),
    405: _l("This action is not allowed here."),
    413: _l("The request is too large."),
    429: _l("Too many requests. Please wait a little and try again."),
    500: _l("Something went wrong on our side. The error has been logged."),
}


def init_app(app):
    ops.init_app(app)  # request ids first, so every later hook's log lines carry one
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.add_template_filter(display_domain)
    from tracker.reports import text
    text.init_app(app)

    @app.context_processor
    def navigation():
        # Only the sections the user's role in the current account may open.
        sections = [(ep, label) for ep, label in SECTIONS if ep in app.view_functions and can(ep)]
        return {"nav_sections": sections}

    for code in ERRORS:
        app.register_error_handler(code, error_page)
    app.register_error_handler(CSRFError, csrf_error)


def error_page(error):
    if getattr(error, "response", None) is not None:
        # A view already chose the answer (e.g. the sign-in form when throttled).
        return error.response
    code = getattr(error, "code", 500) or 500
    if request.path.startswith("/api/"):
        # The public API speaks JSON, and has no session for the page's CSRF token.
        name = getattr(error, "name", None) or "Internal Server Error"
        return jsonify(error=name.lower()), code
    return render_template("errors/error.html", code=code, message=ERRORS.get(code)), code


def csrf_error(error):
    message = _l("Your session form token is missing or expired. Reload the page and try again.")
    if request.headers.get("HX-Request"):
        return str(message), 400
    return render_template("errors/error.html", code=400, message=message), 400
