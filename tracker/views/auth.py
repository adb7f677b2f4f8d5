"""Sign in, sign out and personal settings."""

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import func, select

from tracker import ratelimits
from tracker.extensions import db
from tracker.forms.auth import LoginForm, SettingsForm
from tracker.models import User
from tracker.security import end_all_sessions, safe_local_url, verify_password
from tracker.views.helpers import redirect_to, render

bp = Blueprint("auth", __name__)


# A browser that signed in to an account before carries this signed cookie
# (the ids of its users); such a browser is never held back by the account's own
# limit, so strangers failing on an account cannot keep its owner out.
DEVICE_COOKIE = "tracker_device"
DEVICE_SALT = "tracker-login-device"
DEVICE_DAYS = 365


def _devices():
    return URLSafeTimedSerializer(current_app.secret_key, salt=DEVICE_SALT)


def _known_users():
    """The ids of the users that signed in on this browser (from its device cookie)."""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return []
    try:
        ids = _devices().loads(value, max_age=DEVICE_DAYS * 86400)
    except BadData:
        return []
    return [i for i in ids if isinstance(i, int)] if isinstance(ids, list) else []


def _remember_device(response, user):
    ids = [user.id] + [i for i in _known_users() if i != user.id]
    response.set_cookie(
        DEVICE_COOKIE, _devices().dumps(ids[:5]), max_age=DEVICE_DAYS * 86400,
        httponly=True, samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"],
    )


def _throttles(email, user):
    """The limits one sign-in attempt counts against (see README, "Sign-in throttling").

    Per IP and email tried (the guesser at one account), per IP (one IP trying many
    accounts), and per account from anywhere, which a browser that signed in to the
    account before is exempt from: nobody can lock the owner out from elsewhere.
    """
    ip = request.remote_addr or "-"
    checks = [("LOGIN_ATTEMPTS_PER_IP_EMAIL", (ip, email)), ("LOGIN_ATTEMPTS_PER_IP", (ip,))]
    if user is None or user.id not in _known_users():
        checks.append(("LOGIN_ATTEMPTS_PER_EMAIL", (email,)))
    return checks


def _login_page(form, status=200, **context):
    # The form posts back the ?next= page only when it is one we would follow.
    return render("auth/login.html", form=form, status=status,
                  safe_next=safe_local_url(request.args.get("next")), **context)


def _too_many_attempts(form, seconds):
    if seconds < 60:
        message = ngettext(
            "Too many failed sign-in attempts. Wait %(num)d second and try again.",
            "Too many failed sign-in attempts. Wait %(num)d seconds and try again.", seconds)
    else:
        message = ngettext(
            "Too many failed sign-in attempts. Wait %(num)d minute and try again.",
            "Too many failed sign-in attempts. Wait %(num)d minutes and try again.",
            -(-seconds // 60))
    return _login_page(form, status=429, throttled=message)


@bp.get("/login")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    return _login_page(LoginForm())


@bp.post("/login")
def login_post():
    form = LoginForm()
    if not form.validate_on_submit():
        return _login_page(form, status=422)
    email = form.email.data.strip().lower()[:320]
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    throttles = _throttles(email, user)
    # Counted before the password is checked, in one atomic step: of many parallel
    # tries no more than the limit get as far as the password.
    if (seconds := ratelimits.acquire(throttles)) is not None:
        return _too_many_attempts(form, seconds)
    # Hashes the password once whether or not the email has an account.
    if verify_password(user, form.password.data):
        ratelimits.release(throttles)  # only failures count
        login_user(user, remember=form.remember.data)
        response = redirect_to(safe_local_url(request.args.get("next")) or url_for("main.index"))
        _remember_device(response, user)
        return response
    form.password.errors.append(_("Wrong email or password."))
    return _login_page(form, status=422)


@bp.post("/logout")
def logout():
    # Ends every session of the user: a copy of this session cookie or of the
    # remember-me cookie no longer signs anyone in.
    if current_user.is_authenticated:
        end_all_sessions(current_user)
        db.session.commit()
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect_to(url_for("auth.login"))


@bp.get("/settings")
@login_required
def settings():
    from tracker import mailer
    from tracker.security import can

    form = SettingsForm(locale=current_user.locale or "", timezone=current_user.account.timezone)
    failed_mail = mailer.failed_count(current_user.account_id) if can("activity.index") else 0
    return render("auth/settings.html", form=form, failed_mail=failed_mail)


@bp.post("/settings")
@login_required
def settings_post():
    # A post without the time zone (an older form) keeps the account's.
    form = SettingsForm(timezone=current_user.account.timezone)
    if not form.validate_on_submit():
        return render("auth/settings.html", form=form, status=422)
    current_user.locale = form.locale.data or None
    if current_user.role == "owner":  # the account's time zone is the owner's to change
        current_user.account.timezone = form.timezone.data
    db.session.commit()
    flash(_("Settings saved."), "success")
    return redirect_to(url_for("auth.settings"))


# Passwords: change (signed in), "forgot password" and the reset link (see README,
# "Passwords"). The logic lives in tracker.passwords.

@bp.get("/settings/password")
@login_required
def change_password():
    from tracker.forms.passwords import ChangePasswordForm

    return render("auth/change_password.html", form=ChangePasswordForm())


@bp.post("/settings/password")
@login_required
def change_password_post():
    from tracker import passwords
    from tracker.forms.passwords import ChangePasswordForm

    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return render("auth/change_password.html", form=form, status=422)
    # Guesses at the current password (a borrowed session) count like failed sign-ins.
    throttles = [("LOGIN_ATTEMPTS_PER_IP_EMAIL", (request.remote_addr or "-", current_user.email))]
    if (seconds := ratelimits.acquire(throttles)) is not None:
        form.current_password.errors.append(_too_many_message(seconds))
        return render("auth/change_password.html", form=form, status=429)
    if not verify_password(current_user, form.current_password.data):
        form.current_password.errors.append(_("Wrong password."))
        return render("auth/change_password.html", form=form, status=422)
    ratelimits.release(throttles)
    passwords.change_password(current_user._get_current_object(), form.new_password.data)
    flash(_("Password changed. You were signed out on every other device."), "success")
    return redirect_to(url_for("auth.settings"))


def _too_many_message(seconds):
    minutes = max(1, -(-seconds // 60))
    return ngettext("Too many attempts. Wait %(num)d minute and try again.",
                    "Too many attempts. Wait %(num)d minutes and try again.", minutes)


@bp.get("/forgot-password")
def forgot_password():
    from tracker import mailer
    from tracker.forms.passwords import ForgotPasswordForm

    return render("auth/forgot_password.html", form=ForgotPasswordForm(),
                  mail_configured=mailer.configured())


@bp.post("/forgot-password")
def forgot_password_post():
    """The same answer, as fast, whether or not the address has an account: the look-up
    and the email happen in a job (tracker.jobs.mail.reset_requested)."""
    from flask_babel import get_locale

    from tracker import mailer
    from tracker.forms.passwords import ForgotPasswordForm
    from tracker.jobs.mail import enqueue_reset_request

    form = ForgotPasswordForm()
    configured = mailer.configured()
    if not form.validate_on_submit():
        return render("auth/forgot_password.html", form=form, mail_configured=configured,
                      status=422)
    if not configured:
        return render("auth/forgot_password.html", form=form, mail_configured=False)
    email = form.email.data.strip().lower()[:320]
    checks = [("LOGIN_ATTEMPTS_PER_IP", (request.remote_addr or "-",))]
    if (seconds := ratelimits.acquire(checks)) is not None:
        form.email.errors.append(_too_many_message(seconds))
        return render("auth/forgot_password.html", form=form, mail_configured=True, status=429)
    # Per address, quietly: more requests answer the same and send nothing.
    if ratelimits.acquire([("PASSWORD_RESETS_PER_EMAIL", (email,))]) is None:
        enqueue_reset_request(email, str(get_locale()))
    return render("auth/forgot_password.html", form=None, mail_configured=True, sent_to=email)


@bp.get("/reset-password/<token>")
def reset_password(token):
    from tracker import passwords
    from tracker.forms.passwords import ResetPasswordForm

    user = passwords.user_of(token)
    if user is None:
        return render("auth/reset_password.html", form=None, status=404)
    return render("auth/reset_password.html", form=ResetPasswordForm(), email=user.email)


@bp.post("/reset-password/<token>")
def reset_password_post(token):
    from tracker import passwords
    from tracker.forms.passwords import ResetPasswordForm

    user = passwords.user_of(token)
    if user is None:
        return render("auth/reset_password.html", form=None, status=404)
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        return render("auth/reset_password.html", form=form, email=user.email, status=422)
    if passwords.use_reset(token, form.new_password.data) is None:
        return render("auth/reset_password.html", form=None, status=404)
    if current_user.is_authenticated:
        logout_user()
    flash(_("Your password is changed. Sign in with it."), "success")
    return redirect_to(url_for("auth.login"))
