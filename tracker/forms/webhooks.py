"""The webhook form: a URL and the events it wants."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, ValidationError

from tracker.integrations import webhooks

EVENT_LABELS = {
    "new_request": _l("New requests only (emails that count)"),
    "all": _l("Every email, repeats included"),
}

URL_MESSAGES = {
    "bad_url": _l("Enter a full URL such as https://crm.example.com/hooks/email."),
    "url_too_long": _l("Keep the URL under %(max)s characters."),
    "bad_scheme": _l("The URL must start with https:// or http://."),
    "userinfo": _l("Leave the user name and password out of the URL; sign-ins are not sent."),
    "blocked_address": _l("“%(host)s” points to a private or reserved address (%(address)s); "
                          "sending there is not allowed."),
    "host_not_found": _l("The host “%(host)s” was not found."),
    "timeout": _l("Looking up “%(host)s” took too long. Try again."),
}


def url_message(code, params):
    message = URL_MESSAGES.get(code, URL_MESSAGES["bad_url"])
    return str(message) % params if params else str(message).replace("%%", "%")


class WebhookForm(FlaskForm):
    url = StringField(
        _l("URL"),
        description=_l("Where to POST each email as signed JSON. Use https:// for anything "
                       "beyond a test."),
        validators=[DataRequired(_l("Enter the URL to send emails to."))],
    )
    events = RadioField(
        _l("Send"),
        choices=[SelectChoice(code, label) for code, label in EVENT_LABELS.items()],
        default="new_request",
        validators=[DataRequired(_l("Choose what to send."))],
    )

    def validate_url(self, field):
        try:
            webhooks.check_url(field.data)
        except webhooks.WebhookUrlError as exc:
            raise ValidationError(url_message(exc.code, exc.params)) from None
        field.data = field.data.strip()
