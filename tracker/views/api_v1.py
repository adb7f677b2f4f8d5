"""The read API: the account's emails and visits as JSON, for CRMs and scripts.

`Authorization: Bearer <token>` with a token made in Settings → API tokens
(tracker.integrations.apitokens); no session cookie is read and no CSRF token is
needed (every route is a GET). Each token is rate-limited (API_TOKEN_RATE) and
sees only its own account: another account's id answers 404. The description
of every route is at /api/v1/openapi.json (OPENAPI below, written by hand;
tests/test_api_v1.py checks that it covers every route and every field).

The website script's API (/api/v1/hit, /api/v1/display) shares the prefix but
is another blueprint (tracker.views.api) with its own checks.
"""

from dataclasses import fields

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from tracker import ratelimits
from tracker.channels import CHANNELS
from tracker.extensions import csrf, db
from tracker.integrations import apitokens
from tracker.integrations.payload import VISIT_FIELDS, email_payload, iso
from tracker.models import Account, Email, Rule, Visit
from tracker.reports import emails as report
from tracker.reports import periods

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

# Routes anyone may read (the description of the API).
PUBLIC = frozenset({"api_v1.openapi"})
REALM = 'Bearer realm="api"'


def _error(status, code, message, **extra):
    response = jsonify(error=code, message=message, **extra)
    response.status_code = status
    return response


def _unauthorized(presented):
    response = _error(401, "invalid_token" if presented else "unauthorized",
                      "The bearer token is wrong, revoked or malformed." if presented else
                      "Send a token of the account: Authorization: Bearer <token>.")
    # RFC 6750: no error code when the request carried no credentials at all.
    response.headers["WWW-Authenticate"] = (f'{REALM}, error="invalid_token"' if presented
                                            else REALM)
    return response


def _too_many(seconds):
    response = _error(429, "rate_limited", "Too many requests: slow down and try again later.")
    response.headers["Retry-After"] = str(max(int(seconds), 1))
    return response


@bp.before_request
def authenticate():
    """The token of the request (g.api_token), counted against its rate limit."""
    if request.endpoint in PUBLIC:
        return None
    header = request.headers.get("Authorization")
    ip = request.remote_addr or "-"
    if header:
        # Guessing tokens is pointless (256 bits), but each guess costs a query: bounded per IP.
        if item := ratelimits.used_up("API_TOKEN_RATE", "refused", ip):
            return _too_many(item.get_expiry())
    row = apitokens.authenticate(apitokens.bearer(header))
    if row is None:
        if header:
            ratelimits.count("API_TOKEN_RATE", "refused", ip)
        return _unauthorized(bool(header))
    # Checked and counted in one Redis script: parallel requests cannot all slip through.
    if wait := ratelimits.acquire([("API_TOKEN_RATE", ("token", row.id))]):
        return _too_many(wait)
    apitokens.touch(row)
    g.api_token = row
    g.api_account_id = row.account_id
    return None


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _owned(model, object_id):
    """A row of the token's account by id, or None (another account's rows included)."""
    if not 0 < object_id < 2**63:
        return None
    return db.session.scalar(
        select(model).where(model.id == object_id, model.account_id == g.api_account_id)
    )


def _not_found(what):
    return _error(404, "not_found", f"No such {what} in this account.")


# ------------------------------------------------------------------ emails

FILTERS = [field.name for field in fields(report.Filters)]


def _invalid_filters(filters):
    """Filter arguments given with a value the report does not take (it would drop them)."""
    bad = []
    for name in FILTERS:
        raw = (request.args.get(name) or "").strip()
        if not raw:
            continue
        if name == "period":
            if raw not in periods.PERIODS:
                bad.append(name)
        elif name not in ("q", "utm_source") and not getattr(filters, name):
            bad.append(name)
    return bad


def _limit():
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return report.PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= report.MAX_PAGE_SIZE:
        return None
    return int(raw)


def _payloads(emails):
    """email_payload of each email, with their rules and visits read in two queries."""
    account_id = g.api_account_id
    rule_ids = {email.rule_id for email in emails if email.rule_id is not None}
    visit_ids = {email.visit_id for email in emails if email.visit_id is not None}
    rules = {row.id: row for row in db.session.scalars(
        select(Rule).where(Rule.id.in_(rule_ids), Rule.account_id == account_id))} \
        if rule_ids else {}
    visits = {row.id: row for row in db.session.scalars(
        select(Visit).where(Visit.id.in_(visit_ids), Visit.account_id == account_id))} \
        if visit_ids else {}
    return [email_payload(email, rule=rules.get(email.rule_id),
                          visit=visits.get(email.visit_id)) for email in emails]


@bp.get("/emails")
def emails():
    filters = report.Filters.from_args(request.args)
    bad = _invalid_filters(filters)
    if bad:
        return _error(400, "invalid_filter", "Unknown values for: " + ", ".join(bad) + ".",
                      fields=bad)
    before, after = request.args.get("before"), request.args.get("after")
    if before and after:
        return _error(400, "invalid_cursor", "Pass either before or after, not both.")
    for name, cursor in (("before", before), ("after", after)):
        if cursor and report.parse_cursor(cursor) is None:
            return _error(400, "invalid_cursor", f"{name} is not a cursor this API gave.")
    size = _limit()
    if size is None:
        return _error(400, "invalid_limit",
                      f"limit must be a whole number from 1 to {report.MAX_PAGE_SIZE}.")
    account = db.session.get(Account, g.api_account_id)
    query, invalid = report.filtered(account.id, filters, periods.zone(account.timezone))
    if invalid:
        return _error(400, "invalid_search", "The search (q) has values it does not know.",
                      terms=[{"key": term.key, "value": term.value} for term in invalid])
    page = report.page(query, before=before, after=after, size=size)
    rows = [item[0] for item in page.items]
    newer = report.cursor_of(rows[0]) if rows else (after or None)
    return jsonify(data=_payloads(rows), older=page.older, newer=newer)


@bp.get("/emails/<int:email_id>")
def email(email_id):
    row = _owned(Email, email_id)
    if row is None:
        return _not_found("email")
    return jsonify(_payloads([row])[0])


# ------------------------------------------------------------------ visits

def visit_payload(visit):
    """A visit as the API answers it (the visit as stored now, not an email's snapshot)."""
    return {
        "id": visit.id,
        "site_id": visit.site_id,
        "visitor_id": visit.visitor_id,
        "started_at": iso(visit.started_at),
        "last_seen_at": iso(visit.last_seen_at),
        **{name: getattr(visit, name) or "" for name in VISIT_FIELDS},
        "user_agent": visit.user_agent or "",
        "is_bot": bool(visit.is_bot),
        "page_views": visit.page_views,
    }


@bp.get("/visits/<int:visit_id>")
def visit(visit_id):
    row = _owned(Visit, visit_id)
    if row is None:
        return _not_found("visit")
    return jsonify(visit_payload(row))


# ------------------------------------------------------------------ description

@bp.get("/openapi.json")
def openapi():
    return jsonify(OPENAPI)


def _nullable(kind):
    return {"type": [kind, "null"]}


_TEXT = {"type": "string"}
_INT = {"type": "integer"}
_TIME = {"type": "string", "format": "date-time"}


def _object(properties, description=None):
    schema = {"type": "object", "required": list(properties), "properties": properties}
    if description:
        schema["description"] = description
    return schema


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _one_or_null(name):
    return {"oneOf": [_ref(name), {"type": "null"}]}


def _json(schema, description):
    return {"description": description,
            "content": {"application/json": {"schema": schema}}}


def _query(name, description, schema=None):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or _TEXT}


_ERRORS = {
    "401": _json(_ref("Error"), "No token, or a wrong or revoked one (WWW-Authenticate: Bearer)."),
    "429": _json(_ref("Error"), "The token's rate limit is used up (see Retry-After)."),
}

_ID_FILTER = {"type": "string", "pattern": "^[0-9]+$"}


def _one(name, schema):
    """The description of GET /api/v1/<name>s/{<name>_id}: one row of the token's account."""
    return {"get": {
        "operationId": f"get{schema}",
        "summary": f"One {name}",
        "parameters": [{"name": f"{name}_id", "in": "path", "required": True,
                        "schema": _INT}],
        "responses": {
            "200": _json(_ref(schema), f"The {name}."),
            "404": _json(_ref("Error"), f"No such {name} in the token's account."),
            **_ERRORS,
        },
    }}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "Email tracking read API",
        "version": "1",
        "description": "The account's emails (with the source and visit that brought them) "
                       "and visits. Read-only; authenticate with a token from Settings → "
                       "API tokens: `Authorization: Bearer <token>`.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/emails": {
            "get": {
                "operationId": "listEmails",
                "summary": "Emails, newest first, in pages cut by cursors",
                "description": "Takes the filters of the emails report (/emails) under the "
                               "same names. Follow `older` (as `before`) to the end of the "
                               "list; later, pass `newer` as `after` to read what arrived "
                               "since, repeating while `data` is not empty. A page never "
                               "shifts when new emails arrive.",
                "parameters": [
                    _query("period", "Period in the account's time zone.",
                           {"type": "string", "enum": list(periods.PERIODS)}),
                    _query("date_from", "First day (YYYY-MM-DD) of a custom period.",
                           {"type": "string", "format": "date"}),
                    _query("date_to", "Last day (YYYY-MM-DD) of a custom period.",
                           {"type": "string", "format": "date"}),
                    _query("site", "Site id.", _ID_FILTER),
                    _query("mailbox", "Mailbox id.", _ID_FILTER),
                    _query("rule", "Rule id.", _ID_FILTER),
                    _query("channel", "Channel of the source; none: emails without one.",
                           {"type": "string", "enum": [*CHANNELS, "none"]}),
                    _query("utm_source", "utm_source, exactly."),
                    _query("status", "New requests or repeats.",
                           {"type": "string", "enum": list(report.STATUSES)}),
                    _query("tracked", "Tracked emails (yes) or not tracked ones (no).",
                           {"type": "string", "enum": ["yes", "no"]}),
                    _query("uncertain", "yes: only emails whose attribution is marked "
                                        "uncertain (other values as the report takes them)."),
                    _query("q", "The report's search: words and key:value filters, e.g. "
                                "`channel:paid from:@gmail.com status:new`."),
                    _query("before", "Cursor: the page after it (older emails)."),
                    _query("after", "Cursor: the emails newer than it, oldest of them first "
                                    "cut to a page (the page itself is newest first)."),
                    _query("limit", f"Emails per page (default {report.PAGE_SIZE}).",
                           {"type": "integer", "minimum": 1,
                            "maximum": report.MAX_PAGE_SIZE}),
                ],
                "responses": {
                    "200": _json(_ref("EmailPage"), "A page of emails."),
                    "400": _json(_ref("Error"), "A filter, cursor or limit it cannot use."),
                    **_ERRORS,
                },
            },
        },
        "/api/v1/emails/{email_id}": _one("email", "Email"),
        "/api/v1/visits/{visit_id}": _one("visit", "Visit"),
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {"application/json": {"schema": {
                                          "type": "object"}}}}},
            },
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "EmailPage": _object({
                "data": {"type": "array", "items": _ref("Email")},
                "older": {**_nullable("string"),
                          "description": "Pass as `before` for the next (older) page; "
                                         "null at the oldest email."},
                "newer": {**_nullable("string"),
                          "description": "The position of the newest email of the page: "
                                         "pass as `after` to read newer emails."},
            }),
            "Email": _object({
                "id": _INT,
                "time": {**_TIME, "description": "When the server received it (UTC)."},
                "mailbox_id": _INT,
                "message_id": _nullable("string"),
                "sender": _object({"address": _nullable("string"), "name": _TEXT}),
                "recipients": {"type": "array", "items": _TEXT},
                "recipient": _nullable("string"),
                "subject": _TEXT,
                "new_request": {"type": "boolean"},
                "status": {"type": "string", "enum": ["new", "repeat"]},
                "attribution": _one_or_null("Attribution"),
                "visit": _one_or_null("EmailVisit"),
            }, "An email; text is as received (escape it before putting it in HTML)."),
            "Attribution": _object({
                "how": {"type": ["string", "null"],
                        "description": "static, subaddress, catchall, pool or fallback."},
                "rule": {"oneOf": [_object({"id": _INT, "name": _TEXT}), {"type": "null"}]},
                "tracked_address": _nullable("string"),
                "certain": {"type": "boolean"},
                "uncertain_reason": _nullable("string"),
                "thread_of": _nullable("integer"),
            }),
            "EmailVisit": _object({
                "id": _nullable("integer"),
                "started_at": {"oneOf": [_TIME, {"type": "null"}]},
                **{name: _TEXT for name in VISIT_FIELDS},
            }, "The source the email kept from its visit when it was attributed."),
            "Visit": _object({
                "id": _INT,
                "site_id": _INT,
                "visitor_id": _TEXT,
                "started_at": _TIME,
                "last_seen_at": _TIME,
                **{name: _TEXT for name in VISIT_FIELDS},
                "user_agent": _TEXT,
                "is_bot": {"type": "boolean"},
                "page_views": _INT,
            }),
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": _TEXT, "message": _TEXT,
                "fields": {"type": "array", "items": _TEXT},
                "terms": {"type": "array", "items": _object({"key": _TEXT, "value": _TEXT})},
            }},
        },
    },
}
