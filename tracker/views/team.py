"""Teammates (owners): members and their roles, invitations; the account switcher and
the invitation link (anyone holding it)."""

from flask import Blueprint, abort, flash, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tracker import team
from tracker.extensions import db
from tracker.forms.team import InviteForm, RoleForm, SignUpForm
from tracker.models import Invitation, Membership, User
from tracker.security import ACCOUNT_SESSION_KEY, no_role_needed
from tracker.views.helpers import get_owned, redirect_to, render

bp = Blueprint("team", __name__, url_prefix="/team")


def LAST_OWNER():
    return _("The account needs an owner: make someone else an owner first.")


def role_label(role):
    return {"owner": _("Owner"), "editor": _("Editor"), "viewer": _("Viewer")}.get(role, role)


def _page(form=None, created=None, emailed=False, error=None, status=200):
    account_id = current_user.account_id
    response = render(
        "team/index.html", form=form or InviteForm(formdata=None),
        members=team.members(account_id), invitations=team.pending(account_id),
        created=created, emailed=emailed, error=error,
        role_label=role_label, status=status)
    # The page may show an invitation link: keep it out of every cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index():
    return _page()


def _send_invitation(email, url, role):
    """Email the link when mail sending is configured; True when it was queued."""
    try:
        from tracker import mailer
    except ImportError:
        return False
    if not mailer.configured():
        return False
    text = _("%(who)s invites you to the account “%(account)s” of Email tracking as %(role)s.\n\n"
             "Open this link to join (it works once, for 7 days):\n%(url)s\n",
             who=current_user.email, account=current_user.account.name,
             role=role_label(role).lower(), url=url)
    mail = mailer.send_mail(email, _("Invitation to “%(account)s”", account=current_user.account.name),
                            text, account_id=current_user.account_id)
    return mail is not None


@bp.post("/invitations")
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    email = form.email.data.strip().lower()
    already = db.session.scalar(
        select(Membership).join(User, User.id == Membership.user_id)
        .where(Membership.account_id == current_user.account_id, func.lower(User.email) == email))
    if already is not None:
        form.email.errors.append(_("%(email)s is already a member of this account.", email=email))
        return _page(form, status=422)
    row, token = team.invite(current_user.account_id, email, form.role.data,
                             invited_by=current_user.id)
    url = team.invitation_url(token)
    emailed = _send_invitation(email, url, row.role)
    # The link is shown in this answer only: it is not stored and cannot be shown again.
    return _page(created=(row, url), emailed=emailed, status=201)


@bp.post("/invitations/<int:invitation_id>/revoke")
def revoke(invitation_id):
    row = get_owned(Invitation, invitation_id)
    if row.accepted_at is not None:
        abort(404)
    db.session.delete(row)
    db.session.commit()
    flash(_("Invitation of %(email)s revoked: its link no longer works.", email=row.email), "success")
    return redirect_to(url_for("team.index"))


@bp.post("/members/<int:membership_id>/role")
def change_role(membership_id):
    membership = get_owned(Membership, membership_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _page(error=_("Choose one of the roles."), status=422)
    email = membership.user.email
    try:
        team.change_role(membership, form.role.data)
    except team.TeamError:
        return _page(error=LAST_OWNER(), status=409)
    flash(_("%(email)s is now %(role)s.", email=email, role=role_label(form.role.data).lower()),
          "success")
    if membership.user_id == current_user.id and form.role.data != "owner":
        return redirect_to(url_for("main.index"))
    return redirect_to(url_for("team.index"))


@bp.post("/members/<int:membership_id>/remove")
def remove(membership_id):
    membership = get_owned(Membership, membership_id)
    email, user_id = membership.user.email, membership.user_id
    try:
        team.remove(membership)
    except team.TeamError:
        return _page(error=LAST_OWNER(), status=409)
    flash(_("%(email)s was removed from the account.", email=email), "success")
    if user_id == current_user.id:
        # Left the account: this request no longer works in it.
        current_user.use_membership(None)
        session.pop(ACCOUNT_SESSION_KEY, None)
        return redirect_to(url_for("main.index"))
    return redirect_to(url_for("team.index"))


@bp.post("/switch")
@no_role_needed
@login_required
def switch():
    """Work in another account the user belongs to (this browser's session only)."""
    account_id = request.form.get("account_id", type=int)
    membership = next((m for m in current_user.memberships if m.account_id == account_id), None)
    if membership is None:
        abort(404)
    session[ACCOUNT_SESSION_KEY] = membership.account_id
    flash(_("You are working in “%(account)s” now.", account=membership.account.name), "info")
    return redirect_to(url_for("main.index"))


def _refused(invitation):
    """The page for a link that cannot be used (status, message), or None when it can."""
    if invitation is None:
        return 404, _("This invitation link is not valid. It may have been mistyped or "
                      "revoked; ask for a new one.")
    if invitation.accepted_at is not None:
        return 410, _("This invitation link has already been used. Sign in, or ask for a new one.")
    if invitation.expired:
        return 410, _("This invitation link has expired. Ask the owner of the account for a new one.")
    return None


def _join_page(token, invitation, form=None, status=200, **context):
    response = render("team/join.html", token=token, invitation=invitation,
                      form=form or SignUpForm(formdata=None), role_label=role_label,
                      status=status, **context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/join/<token>")
@no_role_needed
def join(token):
    invitation = team.find(token)
    refused = _refused(invitation)
    if refused:
        status, message = refused
        return _join_page(token, None, status=status, message=message)
    return _join_page(token, invitation, **_join_state(invitation))


def _join_state(invitation):
    if current_user.is_authenticated:
        return {"mismatch": current_user.email.lower() != invitation.email}
    existing = db.session.scalar(select(User).where(func.lower(User.email) == invitation.email))
    return {"existing": existing is not None}


@bp.post("/join/<token>")
@no_role_needed
def join_post(token):
    invitation = team.find(token)
    refused = _refused(invitation)
    if refused:
        status, message = refused
        return _join_page(token, None, status=status, message=message)
    state = _join_state(invitation)
    if current_user.is_authenticated:
        if state["mismatch"]:
            return _join_page(token, invitation, status=403, **state)
        membership = team.accept(invitation, current_user)
        if membership is None:
            return _join_page(token, None, status=410, message=_(
                "This invitation link has already been used. Sign in, or ask for a new one."))
        session[ACCOUNT_SESSION_KEY] = invitation.account_id
        flash(_("You joined “%(account)s”.", account=invitation.account.name), "success")
        return redirect_to(url_for("main.index"))
    if state["existing"]:
        # That person has a login: they sign in, then open the link again.
        return _join_page(token, invitation, status=409, **state)
    form = SignUpForm()
    if not form.validate_on_submit():
        return _join_page(token, invitation, form=form, status=422, **state)
    try:
        user = team.sign_up(invitation, form.password.data)
    except IntegrityError:  # the same email signed up a moment ago
        db.session.rollback()
        return _join_page(token, invitation, status=409, existing=True)
    if user is None:
        return _join_page(token, None, status=410, message=_(
            "This invitation link has already been used. Sign in, or ask for a new one."))
    session[ACCOUNT_SESSION_KEY] = invitation.account_id
    login_user(user)
    flash(_("Welcome! You joined “%(account)s”.", account=invitation.account.name), "success")
    return redirect_to(url_for("main.index"))
