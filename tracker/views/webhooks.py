"""Webhooks in the account's settings: URLs, their signing secret, test, pause, delivery log."""

from flask import Blueprint, flash, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from redis.exceptions import RedisError
from sqlalchemy import select

from tracker import activity
from tracker.extensions import db
from tracker.forms.webhooks import EVENT_LABELS, WebhookForm
from tracker.integrations import webhooks
from tracker.jobs.webhooks import enqueue_delivery
from tracker.models import Webhook, WebhookAttempt, WebhookDelivery
from tracker.views.helpers import get_owned, is_htmx, owned, redirect_to, render

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
# Attempts shown in a URL's delivery log.
LOG_SIZE = 50

@bp.before_request
@login_required
def require_login():
    """Every webhook page needs a signed-in user."""


@bp.app_context_processor
def webhook_helpers():
    return {"webhook_event_labels": EVENT_LABELS, "webhook_error_label": error_label}


def error_label(code):
    """An attempt's error code in words, in the reader's language."""
    labels = {
        "timeout": _("No answer in time"),
        "connect_failed": _("Could not connect"),
        "tls_failed": _("TLS failed (certificate or protocol)"),
        "bad_response": _("Not an HTTP answer"),
        "blocked_address": _("Private or reserved address refused"),
        "host_not_found": _("Host not found"),
        "bad_url": _("Unusable URL"),
        "secret_unreadable": _("The signing secret cannot be decrypted (FERNET_KEYS changed)"),
    }
    return labels.get(code, code or "")


def _log(webhook):
    """The newest attempts of the webhook, with their delivery's event: [(attempt, event, id)]."""
    return db.session.execute(
        select(WebhookAttempt, WebhookDelivery.event, WebhookDelivery.event_id)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookAttempt.webhook_id == webhook.id,
               WebhookAttempt.account_id == webhook.account_id)
        .order_by(WebhookAttempt.id.desc()).limit(LOG_SIZE)
    ).all()


def _show(webhook, block=None, status=200, secret=None):
    pending = db.session.scalar(
        select(db.func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.state == "pending"))
    return render("webhooks/show.html", block, status=status, webhook=webhook,
                  log=_log(webhook), pending=pending, secret=secret)


@bp.get("/")
def index():
    rows = db.session.scalars(owned(Webhook).order_by(Webhook.id)).all()
    return render("webhooks/index.html", webhooks=rows)


@bp.get("/new")
def new():
    return render("webhooks/form.html", "form", form=WebhookForm(), webhook=None)


@bp.post("/new")
def create():
    form = WebhookForm()
    if not form.validate_on_submit():
        return render("webhooks/form.html", "form", status=422, form=form, webhook=None)
    secret = webhooks.new_secret()
    webhook = Webhook(account_id=current_user.account_id, url=form.url.data,
                      events=form.events.data, active=True)
    webhook.secret = secret
    db.session.add(webhook)
    db.session.commit()
    activity.record("created", webhook)
    # The secret is shown in this answer only; the page after a reload never has it.
    response = render("webhooks/show.html", status=201, webhook=webhook, log=[], pending=0,
                      secret=secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:webhook_id>")
def show(webhook_id):
    return _show(get_owned(Webhook, webhook_id))


@bp.get("/<int:webhook_id>/log")
def log(webhook_id):
    """The delivery log alone (htmx refreshes it after "Send test")."""
    return _show(get_owned(Webhook, webhook_id), block="log")


@bp.get("/<int:webhook_id>/edit")
def edit(webhook_id):
    webhook = get_owned(Webhook, webhook_id)
    form = WebhookForm(data={"url": webhook.url, "events": webhook.events})
    return render("webhooks/form.html", "form", form=form, webhook=webhook)


@bp.post("/<int:webhook_id>/edit")
def update(webhook_id):
    webhook = get_owned(Webhook, webhook_id)
    form = WebhookForm()
    if not form.validate_on_submit():
        return render("webhooks/form.html", "form", status=422, form=form, webhook=webhook)
    webhook.url, webhook.events = form.url.data, form.events.data
    db.session.commit()
    activity.record("changed", webhook)
    flash(_("Webhook saved."), "success")
    return redirect_to(url_for("webhooks.show", webhook_id=webhook.id))


@bp.post("/<int:webhook_id>/test")
def send_test(webhook_id):
    webhook = get_owned(Webhook, webhook_id)
    delivery = webhooks.create_test_delivery(webhook)
    db.session.commit()
    try:
        enqueue_delivery(delivery.id)
        message, category = _("Test event queued: its answer appears in the delivery log "
                              "below."), "success"
    except RedisError:
        message, category = _("The job queue is unavailable; the test event is sent when it "
                              "is back."), "error"
    if is_htmx():
        # Only the log changes: it shows the waiting event and refreshes itself.
        return _show(webhook, block="log")
    flash(message, category)
    return redirect_to(url_for("webhooks.show", webhook_id=webhook.id))


@bp.post("/<int:webhook_id>/pause")
def pause(webhook_id):
    webhook = get_owned(Webhook, webhook_id)
    if webhook.active:
        webhooks.pause(webhook, "manual")
        db.session.commit()
        activity.record("changed", webhook)
    flash(_("Webhook paused: no emails are sent to it until you resume it."), "success")
    return redirect_to(url_for("webhooks.show", webhook_id=webhook.id))


@bp.post("/<int:webhook_id>/resume")
def resume(webhook_id):
    webhook = get_owned(Webhook, webhook_id)
    if not webhook.active:
        webhooks.resume(webhook)
        db.session.commit()
        activity.record("changed", webhook)
    flash(_("Webhook resumed: emails stored from now on are sent to it."), "success")
    return redirect_to(url_for("webhooks.show", webhook_id=webhook.id))


@bp.get("/<int:webhook_id>/delete")
def confirm_delete(webhook_id):
    return render("webhooks/delete.html", webhook=get_owned(Webhook, webhook_id))


@bp.post("/<int:webhook_id>/delete")
def delete(webhook_id):
    webhook = get_owned(Webhook, webhook_id)
    activity.record("deleted", webhook, commit=False)
    db.session.delete(webhook)
    db.session.commit()
    flash(_("Webhook deleted."), "success")
    return redirect_to(url_for("webhooks.index"))
