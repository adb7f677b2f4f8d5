"""Mailboxes: the account's real mailboxes that the service reads over IMAP."""

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from wtforms.validators import ValidationError

from tracker import activity, crypto, imap, inboxes
from tracker.extensions import db
from tracker.forms.mailboxes import MailboxForm
from tracker.jobs.sync import enqueue_recount, enqueue_sync, sync_state
from tracker.models import Credential, Mailbox, MailboxFolder, SyncRun, email_count, utcnow
from tracker.search import like_pattern
from tracker.views.helpers import (
    get_owned,
    is_htmx,
    owned,
    paginate,
    redirect_to,
    render,
    search_term,
)

bp = Blueprint("mailboxes", __name__, url_prefix="/mailboxes")
FORM = "mailboxes/form.html"


@bp.before_request
@login_required
def require_login():
    """Every mailboxes page needs a signed-in user."""


@bp.errorhandler(inboxes.InboxBusy)
def inbox_busy(_exc):
    """Another save of a mailbox with this login held on for a minute: nothing was saved."""
    return _("Not saved: another save of a mailbox with this login is still running. "
             "Try again in a minute."), 503, {"Retry-After": "60"}


def partly_synced(mailbox, code, params=None):
    """The missing folder's name when a result means "partly done", else None.

    A sync reads every folder it can and reports the first missing one
    (`folder_missing` with its `folder`); when another folder of the mailbox
    synced fine, the run did its job for the rest and is shown as partly done
    rather than failed.
    """
    if code != "folder_missing":
        return None
    missing = (params or {}).get("folder")
    if any(folder.status == "ok" and folder.name != missing for folder in mailbox.folders):
        return missing or "?"
    return None


@bp.app_context_processor
def mailbox_helpers():
    """Templates show each mailbox's email count and whether a run was partly done."""
    return {"email_count": email_count, "partly_synced": partly_synced}


def _filtered(q):
    query = owned(Mailbox).join(Mailbox.credential)
    if q:
        like = like_pattern(q)
        query = query.where(or_(Credential.login.ilike(like, escape="\\"),
                                Credential.name.ilike(like, escape="\\")))
    return query.order_by(Credential.login, Mailbox.id)


def _form(mailbox=None, **kwargs):
    return MailboxForm(account_id=current_user.account_id, mailbox=mailbox, **kwargs)


def _page(form, mailbox, status=200, block="form", **context):
    return render(FORM, block, status=status, form=form, mailbox=mailbox, **context)


def _invalid(form, mailbox):
    """The form with its inline messages; from a helper button it replaces the whole form."""
    response = _page(form, mailbox, status=422)
    response.headers["HX-Retarget"] = "#mailbox-form"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


def _check(credential, folders):
    """Run the connection check for credentials and folders (bounded by IMAP_TIMEOUT_SECONDS)."""
    try:
        params = credential.server_params()
    except crypto.InvalidToken:
        return imap.CheckResult(False, "password_unreadable", {})
    return imap.check_connection(params, folders, **imap.options(current_app.config))


def _apply(form, mailbox):
    """Store the form on the mailbox; kept folders keep their rows (and later their sync state)."""
    mailbox.credential = form.chosen_credential
    mailbox.active = form.active.data
    mailbox.repeat_period_seconds = form.repeat_seconds
    mailbox.repeat_period_unit = form.repeat_unit.data
    existing = {folder.name: folder for folder in mailbox.folders}
    rows = []
    for position, name in enumerate(form.folders.data):
        row = existing.pop(name, None) or MailboxFolder(name=name)
        row.position = position
        rows.append(row)
    for row in existing.values():
        db.session.delete(row)
    mailbox.folders = rows


def _save(form, mailbox):
    """Apply the form and commit; a concurrent save with the same credentials becomes a message."""
    try:
        _apply(form, mailbox)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        form.credential.errors.append(_("These credentials are already used by another mailbox."))
        return False
    return True


def _check_before_saving(form, mailbox):
    """Check the connection of a valid form before it is saved.

    Returns (result, None) to go on saving, or (result, response) when the check
    failed and "Save anyway" was not ticked: the form again, with the reason and
    the "Save anyway" box, and nothing saved.
    """
    result = _check(form.chosen_credential, form.folders.data)
    if result.ok or form.save_anyway.data:
        return result, None
    response = _page(form, mailbox, status=422, check=result, confirm=True)
    response.headers["HX-Retarget"] = "#mailbox-form"
    response.headers["HX-Reswap"] = "outerHTML"
    return result, response


def _refuse_same_inbox(form, mailbox, first):
    """The form again with why it was not saved: the inbox is connected already."""
    if first.account_id == current_user.account_id:
        message = _("Not saved: this is the same inbox as your mailbox %(address)s, "
                    "connected already under another server name. One mailbox can be "
                    "connected only once: change that mailbox instead.",
                    address=first.address)
        link = first
    else:
        # Nothing about another account's mailbox is shown.
        message = _("Not saved: this inbox is already connected in another account. "
                    "One mailbox can be connected only once.")
        link = None
    response = _page(form, mailbox, status=422, same_inbox=message, same_inbox_mailbox=link)
    response.headers["HX-Retarget"] = "#mailbox-form"
    response.headers["HX-Reswap"] = "outerHTML"
    return response


def _saved(mailbox, result):
    """Record the check made before saving and say how it went."""
    mailbox.record(result, utcnow())
    db.session.commit()
    if result.ok:
        names = mailbox.folder_names
        flash(ngettext("Mailbox %(address)s saved. Integration works: %(num)d folder found "
                       "(%(folders)s).",
                       "Mailbox %(address)s saved. Integration works: %(num)d folders found "
                       "(%(folders)s).",
                       len(names), address=mailbox.address, folders=", ".join(names)),
              "success")
        return redirect_to(url_for("mailboxes.index"))
    flash(_("Mailbox %(address)s saved, but the connection check failed: %(reason)s",
            address=mailbox.address, reason=result.message), "warning")
    return redirect_to(url_for("mailboxes.edit", mailbox_id=mailbox.id))


def _helper_action(form, mailbox):
    """The form's helper buttons ("Test connection", "Load folders"), or None for Save."""
    action = request.form.get("do")
    if action == "check":
        return _test(form, mailbox)
    if action == "folders":
        return _load_folders(form, mailbox)
    return None


def _test(form, mailbox):
    if not form.validate_on_submit():
        return _invalid(form, mailbox)
    result = _check(form.chosen_credential, form.folders.data)
    return _page(form, mailbox, block="check_result", check=result)


def _load_folders(form, mailbox):
    """List the server's folders as choices; only the credentials need to be valid."""
    try:
        form.validate_credential(form.credential)
    except ValidationError as exc:
        form.credential.errors = [str(exc)]
        return _invalid(form, mailbox)
    try:
        params = form.chosen_credential.server_params()
    except crypto.InvalidToken:
        names, error = [], imap.CheckResult(False, "password_unreadable", {})
    else:
        names, error = imap.list_folders(params, **imap.options(current_app.config))
    form.known_folders.data = names
    return _page(form, mailbox, block="folders", folder_error=error and error.message,
                 folders_loaded=not error)


def _last_runs(mailbox_ids):
    """The newest sync run of each mailbox, by mailbox id."""
    if not mailbox_ids:
        return {}
    newest = (select(func.max(SyncRun.id)).where(SyncRun.mailbox_id.in_(mailbox_ids))
              .group_by(SyncRun.mailbox_id))
    runs = db.session.scalars(select(SyncRun).where(SyncRun.id.in_(newest)))
    return {run.mailbox_id: run for run in runs}


def _sync_widget(mailbox, note=None, oob=False):
    """The sync-status widget of one mailbox: it polls while a sync is pending.

    Once nothing is pending it answers 286, which tells htmx to stop polling; with
    `oob` it also refreshes the row's status and email count.
    """
    state = sync_state(mailbox.id)
    return render("mailboxes/_sync.html", status=200 if state.pending else 286,
                  mailbox=mailbox, state=state, last_run=_last_runs([mailbox.id]).get(mailbox.id),
                  note=note, oob=oob)


@bp.get("/")
def index():
    q = search_term()
    page = paginate(_filtered(q))
    ids = [mailbox.id for mailbox in page.items]
    states = {mailbox_id: sync_state(mailbox_id) for mailbox_id in ids}
    return render("mailboxes/index.html", "results", page=page, q=q, states=states,
                  last_runs=_last_runs(ids))


@bp.get("/new")
def new():
    form = _form(data={"credential": request.args.get("credential_id", "")})
    return _page(form, None)


@bp.post("/new")
def create():
    form = _form()
    helper = _helper_action(form, None)
    if helper is not None:
        return helper
    if not form.validate_on_submit():
        return _invalid(form, None)
    result, refused = _check_before_saving(form, None)
    if refused is not None:
        return refused
    with inboxes.claim(form.chosen_credential.login):
        first = inboxes.same_inbox(form.chosen_credential, result)
        if first is not None:
            return _refuse_same_inbox(form, None, first)
        mailbox = Mailbox(account_id=current_user.account_id)
        db.session.add(mailbox)
        if not _save(form, mailbox):
            return _invalid(form, None)
    activity.record("created", mailbox)
    return _saved(mailbox, result)


@bp.get("/<int:mailbox_id>/edit")
def edit(mailbox_id):
    mailbox = get_owned(Mailbox, mailbox_id)
    form = _form(mailbox, data={
        "active": mailbox.active,
        "credential": request.args.get("credential_id") or str(mailbox.credential_id),
        "repeat_value": str(mailbox.repeat_period_value),
        "repeat_unit": mailbox.repeat_period_unit,
        "folders": mailbox.folder_names,
    })
    return _page(form, mailbox)


@bp.post("/<int:mailbox_id>/edit")
def update(mailbox_id):
    mailbox = get_owned(Mailbox, mailbox_id)
    form = _form(mailbox)
    helper = _helper_action(form, mailbox)
    if helper is not None:
        return helper
    if not form.validate_on_submit():
        return _invalid(form, mailbox)
    result, refused = _check_before_saving(form, mailbox)
    if refused is not None:
        return refused
    period = mailbox.repeat_period_seconds
    with inboxes.claim(form.chosen_credential.login):
        first = inboxes.same_inbox(form.chosen_credential, result, mailbox)
        if first is not None:
            return _refuse_same_inbox(form, mailbox, first)
        if not _save(form, mailbox):
            return _invalid(form, mailbox)
    activity.record("changed", mailbox)
    if mailbox.repeat_period_seconds != period:
        # Stored emails are counted again with the new period, in a worker.
        enqueue_recount(mailbox.id)
    return _saved(mailbox, result)


@bp.post("/<int:mailbox_id>/active")
def set_active(mailbox_id):
    """The «Active» switch: the form says which state it wants, so a repeat is harmless."""
    mailbox = get_owned(Mailbox, mailbox_id)
    value = request.form.get("active")
    if value not in ("0", "1"):
        abort(400)
    mailbox.active = value == "1"
    db.session.commit()
    activity.record("changed", mailbox)
    if is_htmx():
        return render("mailboxes/_active.html", mailbox=mailbox)
    flash(_("Mailbox %(address)s is now active.", address=mailbox.address) if mailbox.active
          else _("Mailbox %(address)s is now inactive: it is kept but not synced.",
                 address=mailbox.address), "success")
    return redirect_to(url_for("mailboxes.index"))


@bp.post("/<int:mailbox_id>/check")
def check(mailbox_id):
    """Test the connection of a saved mailbox now and record the result."""
    mailbox = get_owned(Mailbox, mailbox_id)
    result = _check(mailbox.credential, mailbox.folder_names)
    mailbox.record(result, utcnow())
    db.session.commit()
    if is_htmx():
        return render("mailboxes/_status.html", mailbox=mailbox)
    flash(result.message, "success" if result.ok else "warning")
    return redirect_to(url_for("mailboxes.index"))


@bp.get("/<int:mailbox_id>/delete")
def confirm_delete(mailbox_id):
    mailbox = get_owned(Mailbox, mailbox_id)
    return render("mailboxes/delete.html", mailbox=mailbox, emails=email_count(mailbox))


@bp.post("/<int:mailbox_id>/delete")
def delete_mailbox(mailbox_id):
    mailbox = get_owned(Mailbox, mailbox_id)
    address = mailbox.address
    activity.record("deleted", mailbox, commit=False)
    db.session.delete(mailbox)
    db.session.commit()
    flash(_("Mailbox %(address)s deleted.", address=address), "success")
    return redirect_to(url_for("mailboxes.index"))


@bp.post("/<int:mailbox_id>/sync")
def sync_now(mailbox_id):
    """«Sync now»: queue a sync at once (a pending one is not queued twice)."""
    mailbox = get_owned(Mailbox, mailbox_id)
    if not mailbox.active:
        note = _("Mailbox %(address)s is inactive: switch it on to sync it.",
                 address=mailbox.address)
    else:
        try:
            enqueue_sync(mailbox.id, trigger="manual")
            note = None
        except RedisError:
            current_app.logger.warning("Redis unavailable: mailbox %s not queued", mailbox.id)
            note = _("The job queue is not reachable right now; try again in a minute.")
    if is_htmx():
        response = _sync_widget(mailbox, note=note)
        response.status_code = 200
        return response
    if note:
        flash(note, "warning")
    else:
        flash(_("Mailbox %(address)s will be synced in a moment.", address=mailbox.address),
              "success")
    return redirect_to(url_for("mailboxes.index"))


@bp.get("/<int:mailbox_id>/sync-status")
def sync_status(mailbox_id):
    """The widget again, for its polling."""
    return _sync_widget(get_owned(Mailbox, mailbox_id), oob=True)


@bp.get("/<int:mailbox_id>/runs")
def runs(mailbox_id):
    """The mailbox's sync log: its folders' state and the last runs."""
    mailbox = get_owned(Mailbox, mailbox_id)
    rows = db.session.scalars(
        select(SyncRun).where(SyncRun.mailbox_id == mailbox.id)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(current_app.config["SYNC_RUNS_KEPT"])
    ).all()
    return render("mailboxes/runs.html", mailbox=mailbox, runs=rows,
                  state=sync_state(mailbox.id), emails=email_count(mailbox))
