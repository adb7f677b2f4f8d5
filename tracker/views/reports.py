"""Reports: the emails journal, an email's and a visit's detail, exports and the dashboard."""

from dataclasses import replace

from flask import Blueprint, abort, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from tracker.extensions import db
from tracker.forms.rules import CHANNEL_LABELS, MODE_LABELS
from tracker.models import Credential, Email, Mailbox, Rule, Site, Visit
from tracker.reports import emails as report
from tracker.reports import offline, periods
from tracker.reports.dashboard import dashboard_context, setup_steps
from tracker.reports.explain import explain
from tracker.reports.exports import csv_response, xlsx_response
from tracker.reports.visits import visit_detail
from tracker.views.helpers import get_owned, owned, render

bp = Blueprint("reports", __name__)


PERIOD_LABELS = {
    "all": _l("All time"),
    "today": _l("Today"),
    "yesterday": _l("Yesterday"),
    "7d": _l("Last 7 days"),
    "30d": _l("Last 30 days"),
    "custom": _l("Custom dates"),
}


@bp.before_request
@login_required
def require_login():
    """Every report needs a signed-in user."""


@bp.context_processor
def labels():
    return {"period_labels": PERIOD_LABELS, "channel_labels": CHANNEL_LABELS,
            "mode_labels": MODE_LABELS}


def account_zone():
    """The ZoneInfo of the signed-in user's account."""
    return periods.zone(current_user.account.timezone)


def _filters():
    return report.Filters.from_args(request.args)


def _filtered(filters):
    """The account's emails narrowed by the filters: (query, the search terms not understood)."""
    return report.filtered(current_user.account_id, filters, account_zone())


def _choices():
    """The account's sites, mailboxes and rules, for the filter selects."""
    return {
        "sites": db.session.scalars(owned(Site).order_by(Site.name, Site.id)).all(),
        "mailboxes": db.session.execute(
            owned(Mailbox).with_only_columns(Mailbox.id, Credential.login)
            .join(Credential, Credential.id == Mailbox.credential_id)
            .order_by(Credential.login)).all(),
        "rules": db.session.scalars(owned(Rule).order_by(Rule.priority, Rule.id)).all(),
    }


@bp.get("/emails")
def emails():
    filters = _filters()
    query, invalid = _filtered(filters)
    page = report.page(report.with_names(query), before=request.args.get("before"),
                       after=request.args.get("after"))
    empty_account = not page.items and not filters.narrowed and not request.args.get("before") \
        and db.session.scalar(owned(Email).with_only_columns(Email.id).limit(1)) is None
    choices = _choices()
    setup = setup_steps(current_user.account, choices["sites"]) if empty_account else None
    return render("reports/emails.html", "results", filters=filters, page=page,
                  invalid=invalid, empty_account=empty_account, setup=setup, **choices)


@bp.get("/emails/<int:email_id>")
def email(email_id):
    row = get_owned(Email, email_id)
    why = explain(row)
    mailbox = db.session.get(Mailbox, row.mailbox_id)
    return render("reports/email.html", email=row, why=why, mailbox_login=mailbox.address,
                  rule_name=why.source.rule.name if why.source.rule else "—")


@bp.get("/visits/<int:visit_id>")
def visit(visit_id):
    row = get_owned(Visit, visit_id)
    return render("reports/visit.html", visit=row, **visit_detail(row))


@bp.get("/emails.csv")
def emails_csv():
    query, _invalid = _filtered(_filters())
    return csv_response(query, account_zone())


@bp.get("/emails.xlsx")
def emails_xlsx():
    query, _invalid = _filtered(_filters())
    return xlsx_response(query, account_zone())


def _offline_page(filters, query, errors=None, status=200):
    return render("reports/offline.html", filters=filters, summary=offline.summary(query),
                  errors=errors or {}, default_target=offline.DEFAULT_TARGET,
                  args=request.args, status=status)


@bp.get("/emails/offline-conversions")
def offline_conversions():
    """What the offline-conversion files of the filter hold, and the forms that fetch them."""
    filters = _filters()
    query, _invalid = _filtered(filters)
    return _offline_page(filters, query)


@bp.get("/emails/offline-conversions/<kind>.csv")
def offline_csv(kind):
    """The filter's new requests as Metrica's (kind "metrica") or GA's ("ga") upload file."""
    if kind not in offline.KINDS:
        abort(404)
    filters = _filters()
    query, _invalid = _filtered(filters)
    field = "target" if kind == "metrica" else "event_name"
    name = request.args.get(field, offline.DEFAULT_TARGET, type=str).strip()
    measurement_id = request.args.get("measurement_id", "", type=str).strip().upper()
    errors = {}
    if kind == "metrica" and not offline.TARGET.fullmatch(name):
        errors[field] = _("A goal id is letters, digits, “_”, “.” and “-”, starting with a "
                          "letter or digit, at most 100 characters.")
    if kind == "ga" and not offline.EVENT_NAME.fullmatch(name):
        errors[field] = _("An event name is letters, digits and “_”, starting with a letter, "
                          "at most 40 characters.")
    if kind == "ga" and measurement_id and not offline.MEASUREMENT_ID.fullmatch(measurement_id):
        errors["measurement_id"] = _("A measurement ID looks like G-XXXXXXXXXX.")
    if errors:
        return _offline_page(filters, query, errors, status=422)
    return offline.csv_response(query, kind, name, account_zone(), measurement_id)


def dashboard():
    """The start page after sign-in (served at / by tracker.views.main)."""
    filters = _filters()
    if "period" not in request.args:
        filters = replace(filters, period="30d")
    return render("reports/dashboard.html",
                  **dashboard_context(current_user.account, filters, account_zone()))
