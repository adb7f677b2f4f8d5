"""Sign in, sign out and personal settings."""

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from tracker import ratelimits
from tracker.extensions import db
from tracker.forms.auth import LoginForm, SettingsForm
from tracker.models import User
from tracker.views.helpers import redirect_to, render

bp = Blueprint("auth", __name__)


def _throttles():
    """Failed sign-ins are counted per IP and per email tried (whatever the IP)."""
    email = (request.form.get("email") or "").strip().lower()[:320]
    return [("LOGIN_ATTEMPTS_PER_IP", request.remote_addr or "-"),
            ("LOGIN_ATTEMPTS_PER_EMAIL", email)]


def _too_many_attempts(limit):
    form = LoginForm()
    message = _("Too many failed sign-in attempts. Wait %(minutes)d minutes and try again.",
                minutes=max(1, round(limit.get_expiry() / 60)))
    return render("auth/login.html", form=form, throttled=message, status=429)


def _safe_next(target):
    """Only local paths are followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.get("/login")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    return render("auth/login.html", form=LoginForm())


@bp.post("/login")
def login_post():
    throttles = _throttles()
    for setting, key in throttles:
        if (limit := ratelimits.used_up(setting, key)) is not None:
            return _too_many_attempts(limit)
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(
            select(User).where(func.lower(User.email) == form.email.data.strip().lower())
        )
        if user is not None and user.active and user.check_password(form.password.data):
            login_user(user, remember=form.remember.data)
            return redirect_to(_safe_next(request.args.get("next")) or url_for("main.index"))
        for setting, key in throttles:
            ratelimits.count(setting, key)
        form.password.errors.append(_("Wrong email or password."))
    return render("auth/login.html", form=form, status=422)


@bp.post("/logout")
def logout():
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect_to(url_for("auth.login"))


@bp.get("/settings")
@login_required
def settings():
    form = SettingsForm(locale=current_user.locale or "", timezone=current_user.account.timezone)
    return render("auth/settings.html", form=form)


@bp.post("/settings")
@login_required
def settings_post():
    # A post without the time zone (an older form) keeps the account's.
    form = SettingsForm(timezone=current_user.account.timezone)
    if not form.validate_on_submit():
        return render("auth/settings.html", form=form, status=422)
    current_user.locale = form.locale.data or None
    current_user.account.timezone = form.timezone.data
    db.session.commit()
    flash(_("Settings saved."), "success")
    return redirect_to(url_for("auth.settings"))
