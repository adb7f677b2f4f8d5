"""Credentials: how the service signs in to the account's mail servers."""

import json
from types import SimpleNamespace
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError

from tracker import activity, imap, inboxes, oauth
from tracker.extensions import db
from tracker.forms.mailboxes import CredentialForm
from tracker.forms.oauth import OAuthCredentialForm
from tracker.oauth import flow as oauth_flow
from tracker.mailservices import OTHER, SECURITY_LABELS, SERVICES, service_hint
from tracker.models import Credential
from tracker.search import like_pattern
from tracker.security import CSP, safe_local_url
from tracker.views.helpers import (
    get_owned,
    is_htmx,
    owned,
    paginate,
    redirect_to,
    render,
    search_term,
)

bp = Blueprint("credentials", __name__, url_prefix="/credentials")
FORM = "credentials/form.html"


@bp.before_request
@login_required
def require_login():
    """Every credentials page needs a signed-in user."""


@bp.app_context_processor
def credential_helpers():
    """Credentials are shown in the mailbox pages too (the dialog, the delete page)."""
    return {"security_labels": SECURITY_LABELS, "oauth_provider_label": _provider_label}


def _provider_label(key):
    provider = oauth.get_provider(key)
    return provider.label if provider else key


def _filtered(q):
    query = owned(Credential)
    if q:
        like = like_pattern(q)
        query = query.where(or_(Credential.name.ilike(like, escape="\\"),
                                Credential.login.ilike(like, escape="\\"),
                                Credential.host.ilike(like, escape="\\")))
    return query.order_by(Credential.name, Credential.id)


def safe_next(target):
    """Only local paths are followed back after saving (tracker.security.safe_local_url)."""
    return safe_local_url(target)


def _inline():
    """True when the form sits in the mailbox form's dialog."""
    return request.args.get("inline") == "1"


def _form(credential=None, **kwargs):
    return CredentialForm(account_id=current_user.account_id, credential=credential, **kwargs)


def _page(form, credential, status=200, block="form", check=None, connected=None):
    service = form.service.data if form.service.data in SERVICES else OTHER
    return _allow_provider_forms(render(
        FORM, block, status=status, form=form, credential=credential, check=check,
        connected=connected,
        preset=SERVICES.get(service), hint=service_hint(service),
        next=safe_next(request.args.get("next")), inline=_inline(),
        oauth_providers=oauth.enabled_providers(), oauth_next=_dialog_page(),
    ))


def _dialog_page():
    """The page the credentials dialog sits in (its htmx request says), to come back to
    after signing in with a provider."""
    if not _inline():
        return None
    return safe_next(urlsplit(request.headers.get("HX-Current-URL", "")).path or None)


def _allow_provider_forms(response):
    """The "Sign in with …" forms redirect to the provider: CSP's form-action must let them
    (browsers check it on the redirect too), for the configured providers' origins only."""
    origins = sorted({oauth.origin(p.authorize_url) for p in oauth.enabled_providers()})
    if origins:
        response.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(origins))
    return response


def _invalid(form, credential):
    """The form with its inline messages; from a "Test connection" click it replaces the form."""
    response = _page(form, credential, status=422)
    response.headers["HX-Retarget"] = "#credential-form"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


def _apply(form, credential):
    host, port, security = form.server
    credential.name = form.name.data.strip()
    credential.protocol = "imap"
    credential.service = form.service.data
    credential.host, credential.port, credential.security = host, port, security
    credential.login = form.login.data
    if form.password.data:
        credential.password = form.password.data


def _commit(form):
    """Commit; a concurrent save of the same mailbox becomes the same form message."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        form.login.errors.append(form.taken_message())
        return False
    return True


def _test(form, credential):
    """Check the credentials as typed (the stored password when the field is left empty)."""
    if not form.validate_on_submit():
        return _invalid(form, credential)
    host, port, security = form.server
    password = form.password.data or (credential.password if credential else "")
    params = imap.ServerParams(host=host, port=port, security=security, login=form.login.data,
                               password=password, service=form.service.data)
    result = imap.check_connection(params, **imap.options(current_app.config))
    return _page(form, credential, block="check_result", check=result,
                 connected=_connected_note(form, credential, result) if result.ok else None)


def _connected_note(form, credential, result):
    """What to say when the inbox these credentials reach is connected as a mailbox already.

    A mailbox with them would be refused (tracker.inboxes.same_inbox): say so
    before the user goes on, naming the mailbox only when it is the user's own.
    """
    host, port, _security = form.server
    typed = SimpleNamespace(login=form.login.data, host=host, port=port,
                            id=credential.id if credential else 0)
    first = inboxes.same_inbox(typed, result)
    if first is None:
        return None
    if first.account_id == current_user.account_id:
        return _("This inbox is already connected as your mailbox %(address)s: a second "
                 "mailbox with these credentials would read the same emails and will not be "
                 "saved.", address=first.address)
    return _("This inbox is already connected in another account: a mailbox with these "
             "credentials will not be saved.")


@bp.get("/")
def index():
    q = search_term()
    page = paginate(_filtered(q))
    return render("credentials/index.html", "results", page=page, q=q)


@bp.get("/new")
def new():
    return _page(_form(), None)


@bp.post("/new")
def create():
    form = _form()
    if request.form.get("do") == "check":
        return _test(form, None)
    if not form.validate_on_submit():
        return _invalid(form, None)
    credential = Credential(account_id=current_user.account_id)
    _apply(form, credential)
    db.session.add(credential)
    if not _commit(form):
        return _invalid(form, None)
    activity.record("created", credential)
    if _inline() and is_htmx():
        return _created_inline(credential)
    flash(_("Credentials “%(name)s” saved.", name=credential.name), "success")
    return redirect_to(_back(credential) or url_for("credentials.index"))


def _created_inline(credential):
    """Answer the mailbox form's dialog: it closes and selects the new credentials."""
    response = render("credentials/_created.html", credential=credential)
    response.headers["HX-Trigger"] = json.dumps({
        "credential-created": {"id": str(credential.id),
                               "label": f"{credential.name} — {credential.login}"},
    })
    return response


def _back(credential):
    """The ?next= page, told which credentials were just made (the mailbox form selects them)."""
    target = safe_next(request.args.get("next"))
    if not target:
        return None
    parts = urlsplit(target)
    query = f"{parts.query}&" if parts.query else ""
    query += urlencode({"credential_id": credential.id})
    return urlunsplit(("", "", parts.path, query, ""))


@bp.get("/<int:credential_id>/edit")
def edit(credential_id):
    credential = get_owned(Credential, credential_id)
    if credential.is_oauth:
        return _oauth_page(OAuthCredentialForm(data={"name": credential.name}), credential)
    form = _form(credential, data={
        "name": credential.name, "service": credential.service, "host": credential.host,
        "port": str(credential.port), "security": credential.security, "login": credential.login,
    })
    return _page(form, credential)


@bp.post("/<int:credential_id>/edit")
def update(credential_id):
    credential = get_owned(Credential, credential_id)
    if credential.is_oauth:
        return _update_oauth(credential)
    form = _form(credential)
    if request.form.get("do") == "check":
        return _test(form, credential)
    if not form.validate_on_submit():
        return _invalid(form, credential)
    _apply(form, credential)
    if not _commit(form):
        return _invalid(form, credential)
    activity.record("changed", credential)
    flash(_("Credentials “%(name)s” saved.", name=credential.name), "success")
    return redirect_to(_back(credential) or url_for("credentials.index"))


@bp.get("/server-fields")
def server_fields():
    """The server part of the form for the chosen service (host, port and security for "Other")."""
    form = _form(formdata=request.args, meta={"csrf": False})
    return _page(form, None, block="server_fields")


@bp.get("/<int:credential_id>/delete")
def confirm_delete(credential_id):
    credential = get_owned(Credential, credential_id)
    return render("credentials/delete.html", credential=credential)


@bp.post("/<int:credential_id>/delete")
def delete_credential(credential_id):
    credential = get_owned(Credential, credential_id)
    if credential.mailbox is not None:
        # Deleting them would silently disconnect the mailbox: it goes first, on purpose.
        return render("credentials/delete.html", credential=credential, status=409)
    name = credential.name
    if credential.is_oauth:
        oauth.revoke(credential)  # the provider forgets the refresh token too
    activity.record("deleted", credential, commit=False)
    db.session.delete(credential)
    db.session.commit()
    flash(_("Credentials “%(name)s” deleted.", name=name), "success")
    return redirect_to(url_for("credentials.index"))


# ------------------------------------------------------------------ OAuth

OAUTH_FORM = "credentials/oauth.html"


def _oauth_page(form, credential, status=200):
    return _allow_provider_forms(render(
        OAUTH_FORM, status=status, form=form, credential=credential,
        provider=oauth.get_provider(credential.oauth_provider)))


def _update_oauth(credential):
    """OAuth credentials: only the name changes here; the rest comes from the provider."""
    form = OAuthCredentialForm()
    if not form.validate_on_submit():
        return _oauth_page(form, credential, status=422)
    credential.name = form.name.data.strip()
    db.session.commit()
    activity.record("changed", credential)
    flash(_("Credentials “%(name)s” saved.", name=credential.name), "success")
    return redirect_to(url_for("credentials.index"))


@bp.post("/oauth/<provider_key>/start")
def oauth_start(provider_key):
    """Send the browser to the provider's sign-in and consent page (PKCE, a fresh state)."""
    provider = oauth.get_provider(provider_key)
    if provider is None:
        abort(404)
    credential_id = request.form.get("credential_id", type=int)
    if credential_id is not None:
        credential = get_owned(Credential, credential_id)
        if credential.oauth_provider != provider.key:
            abort(404)
    url = oauth_flow.start(provider, _flow_owner(), credential_id=credential_id,
                           next_url=safe_next(request.args.get("next")))
    return redirect_to(url)


def _flow_owner():
    """Whose flow it is: the user, in the account they were in when it started."""
    return f"{current_user.id}/{current_user.account_id}"


def _oauth_failed(message, status=400):
    return render("credentials/oauth_failed.html", status=status, message=message)


@bp.get("/oauth/callback")
def oauth_callback():
    """The provider sends the browser back here with a code (or an error) and the state."""
    state = request.args.get("state", "")
    flow = oauth_flow.finish(state, _flow_owner())
    if flow is None:
        return _oauth_failed(_("This sign-in was not started here, has expired or was "
                               "already used. Start it again from the credentials."))
    provider = oauth.get_provider(flow["provider"])
    if provider is None:
        return _oauth_failed(_("This sign-in provider is not configured any more."))
    if request.args.get("error") or not request.args.get("code"):
        return _oauth_failed(_("%(provider)s did not grant access (%(error)s). Nothing "
                               "was saved.", provider=provider.label,
                               error=request.args.get("error", "")[:100] or "no code"))
    try:
        tokens = oauth.exchange_code(provider, code=request.args["code"],
                                     redirect_uri=oauth_flow.redirect_uri(),
                                     verifier=oauth_flow.verifier_for(state))
        login = oauth.login_of(provider, tokens)
    except oauth.OAuthRefused as exc:
        return _oauth_failed(_("%(provider)s refused the sign-in (%(error)s). Nothing was "
                               "saved; try again.", provider=provider.label, error=exc.error))
    if len(login) > 320 or any(not c.isprintable() or c.isspace() for c in login):
        return _oauth_failed(_("%(provider)s answered with an address that cannot be used "
                               "as an IMAP login.", provider=provider.label))
    return _save_oauth(provider, flow, login, tokens)


def _save_oauth(provider, flow, login, tokens):
    credential = None
    if flow.get("credential"):
        credential = db.session.get(Credential, flow["credential"])
        if credential is None or credential.account_id != current_user.account_id:
            return _oauth_failed(_("These credentials were deleted meanwhile."), 404)
        if credential.login != login:
            return _oauth_failed(_("You signed in as %(login)s, but these credentials are "
                                   "for %(expected)s. Sign in with that account.",
                                   login=login, expected=credential.login))
    else:
        credential = db.session.scalars(owned(Credential).where(
            Credential.host == provider.imap_host, Credential.login == login)).first()
    created = credential is None
    if created:
        credential = Credential(account_id=current_user.account_id,
                                name=f"{provider.label} — {login}"[:200])
        credential.password = ""
        db.session.add(credential)
    credential.protocol = "imap"
    credential.service = provider.service
    credential.oauth_provider = provider.key
    credential.host, credential.port = provider.imap_host, provider.imap_port
    credential.security, credential.login = provider.imap_security, login
    oauth.store_tokens(credential, tokens)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return _oauth_failed(_("The mailbox %(login)s is already connected in another "
                               "account, so it cannot be saved here.", login=login), 409)
    activity.record("created" if created else "changed", credential)
    flash(_("Signed in with %(provider)s as %(login)s: credentials “%(name)s” saved.",
            provider=provider.label, login=login, name=credential.name), "success")
    target = flow.get("next")
    if target:
        parts = urlsplit(target)
        query = f"{parts.query}&" if parts.query else ""
        target = urlunsplit(("", "", parts.path,
                             query + urlencode({"credential_id": credential.id}), ""))
    return redirect_to(target or url_for("credentials.index"))
