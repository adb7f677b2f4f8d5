"""The credential and mailbox forms."""

import ipaddress
import re
import unicodedata

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import PasswordInput

from tracker.domains import DomainError, normalize_domain
from tracker.extensions import db
from tracker.mailservices import OTHER, OTHER_LABEL, PRESETS, SECURITY_LABELS, SERVICES
from tracker.models import Credential
from tracker.models.mailboxes import DAY, PERIOD_UNITS

MAX_FOLDERS = 20
MAX_PERIOD = 365 * DAY
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def normalize_host(text):
    """The stored form of a server host: an IP address, or a lowercase ASCII (IDNA) name."""
    raw = (text or "").strip()
    bare = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not raw or any(c in raw for c in "/:@[]\\?#") or any(c.isspace() for c in raw):
        raise DomainError(raw)
    return normalize_domain(raw)


MAX_LOGIN = 320
# An email-address-shaped login: one @, something on both sides, no spaces.
_EMAIL_SHAPED = re.compile(r"[^@\s]+@[^@\s]+")


class LoginError(ValueError):
    """Not a login the service can store and send."""


def normalize_login(text):
    """The stored form of an IMAP login.

    Servers take an email address (lowercased here, as mail services treat it), but
    also plain user names (`ivan`, `DOMAIN\\user`) and addresses on company-internal
    domains (`ivan@corp.local`): those are real logins too. A login that is not an
    email address is kept as typed, since some servers tell `Ivan` from `ivan`.
    Spaces at the ends are dropped; control characters and over-long logins raise
    LoginError.
    """
    value = (text or "").strip()
    if not value or len(value) > MAX_LOGIN or any(
            unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise LoginError(value)
    if not _EMAIL_SHAPED.fullmatch(value):
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        # Company-internal domains (`.local`, a bare host name) are refused by strict
        # email validation but are still addresses: the same lowercasing applies.
        return value.lower()


class CredentialForm(FlaskForm):
    name = StringField(
        _l("Name"),
        description=_l("For you, e.g. “Sales mailbox”."),
        validators=[
            DataRequired(_l("Give the credentials a name.")),
            Length(max=200, message=_l("Keep the name under 200 characters.")),
        ],
    )
    protocol = SelectField(_l("Protocol"), choices=[SelectChoice("imap", "IMAP")], default="imap",
                           validate_choice=False)
    service = SelectField(
        _l("Mail service"),
        choices=[SelectChoice(s.key, s.label) for s in PRESETS]
        + [SelectChoice(OTHER, OTHER_LABEL)],
        default=PRESETS[0].key,
        validate_choice=False,
    )
    host = StringField(_l("IMAP server"), validators=[Length(max=253, message=_l("Too long."))])
    port = StringField(_l("Port"), default="993")
    security = SelectField(
        _l("Security"),
        choices=[SelectChoice(key, label) for key, label in SECURITY_LABELS.items()],
        default="ssl",
        validate_choice=False,
    )
    login = StringField(
        _l("Login"),
        description=_l("Usually the mailbox's email address; some servers take a plain "
                       "login such as ivan or DOMAIN\\ivan."),
        validators=[
            DataRequired(_l("Enter the login, usually the mailbox's email address.")),
            Length(max=MAX_LOGIN, message=_l("Too long.")),
        ],
    )
    # What was typed is shown again after a form error so that a retry does not need
    # it twice; a stored password is never put into the form (the edit page starts empty).
    password = PasswordField(
        _l("Password"),
        widget=PasswordInput(hide_value=False),
        validators=[Length(max=1000, message=_l("Too long."))],
    )

    def __init__(self, *args, account_id, credential=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account_id = account_id
        self.credential = credential
        self.server = None  # (host, port, security) once validated

    @property
    def is_other(self):
        return self.service.data == OTHER

    def validate_protocol(self, field):
        if field.data != "imap":
            raise ValidationError(_l("Only IMAP is supported."))

    def validate_service(self, field):
        if field.data != OTHER and field.data not in SERVICES:
            raise ValidationError(_l("Choose a mail service from the list."))

    def validate_security(self, field):
        if self.is_other and field.data not in SECURITY_LABELS:
            raise ValidationError(_l("Choose SSL/TLS or STARTTLS."))

    def validate_login(self, field):
        if not (field.data or "").strip():
            raise ValidationError(_l("Enter the login, usually the mailbox's email address."))
        try:
            field.data = normalize_login(field.data)
        except LoginError:
            raise ValidationError(
                _l("The login cannot contain line breaks or other control characters.")
            ) from None

    def validate_password(self, field):
        if not field.data and self.credential is None:
            raise ValidationError(_l("Enter the password (an app password where the service "
                                     "asks for one)."))
        if field.data and _CONTROL & set(field.data):
            raise ValidationError(_l("The password cannot contain line breaks or other "
                                     "control characters."))

    def validate_host(self, field):
        if not self.is_other:
            return
        if not (field.data or "").strip():
            raise ValidationError(_l("Enter the IMAP server, e.g. imap.example.com."))
        try:
            field.data = normalize_host(field.data)
        except DomainError:
            raise ValidationError(_l("Not a server name or IP address.")) from None

    def validate_port(self, field):
        if not self.is_other:
            return
        text = (field.data or "").strip()
        if not text.isdigit() or not 0 < int(text) < 65536:
            raise ValidationError(_l("Enter a port number from 1 to 65535, usually 993."))
        allowed = current_app.config["IMAP_ALLOWED_PORTS"]
        if int(text) not in allowed:
            raise ValidationError(_l("Port %(port)s is not allowed here; use one of: %(ports)s.",
                                     port=int(text), ports=", ".join(map(str, allowed))))
        field.data = text

    def validate(self, extra_validators=None):
        if not super().validate(extra_validators):
            return False
        if self.is_other:
            self.server = (self.host.data, int(self.port.data), self.security.data)
        else:
            preset = SERVICES[self.service.data]
            self.server = (preset.host, preset.port, preset.security)
        return self._check_unique()

    def _check_unique(self):
        """One real mailbox (host + login) is connected once, across all accounts."""
        host, login = self.server[0], self.login.data
        # Case-insensitive, though user names are stored as typed: `Ivan` and `ivan` on
        # one server are most likely the same mailbox, which must not be read twice.
        other = db.session.scalar(
            select(Credential).where(
                Credential.host == host,
                func.lower(Credential.login) == login.lower(),
                Credential.id != (self.credential.id if self.credential else 0),
            )
        )
        if other is None:
            return True
        self.login.errors.append(self.taken_message(other))
        return False

    def taken_message(self, other=None):
        if other is not None and other.account_id == self.account_id:
            return _l("You already have credentials for %(login)s on %(host)s: “%(name)s”.",
                      login=other.login, host=other.host, name=other.name)
        return _l("The mailbox %(login)s on %(host)s is already connected in another account. "
                  "One mailbox can be connected only once.",
                  login=self.login.data, host=self.server[0] if self.server else "")


class MailboxForm(FlaskForm):
    active = BooleanField(_l("Active"), default=True,
                          description=_l("An inactive mailbox is kept but never synced."))
    credential = SelectField(_l("Credentials"), validate_choice=False)
    repeat_value = StringField(_l("Repeat period"), default="1")
    repeat_unit = SelectField(
        _l("Unit"),
        choices=[SelectChoice("hours", _l("hours")), SelectChoice("days", _l("days"))],
        default="days",
        validate_choice=False,
    )
    folders = SelectMultipleField(_l("Folders to read"), validate_choice=False, default=["INBOX"])
    # The folders offered as choices (those loaded from the server), carried across re-renders.
    known_folders = SelectMultipleField(validate_choice=False)
    # Saving checks the connection first; a mailbox whose check fails is saved only
    # when this is ticked (it is offered next to the failed check's message).
    save_anyway = BooleanField(_l("Save anyway: keep the mailbox and sync it once the "
                                  "connection works"))

    def __init__(self, *args, account_id, mailbox=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account_id = account_id
        self.mailbox = mailbox
        self.chosen_credential = None
        query = (
            select(Credential)
            .options(selectinload(Credential.mailbox))
            .where(Credential.account_id == account_id)
            .order_by(Credential.name, Credential.id)
        )
        self.credentials = db.session.scalars(query).all()
        self.credential.choices = [SelectChoice("", _l("Choose credentials…"))] + [
            # Credentials of another mailbox are shown but cannot be picked.
            SelectChoice(str(c.id), f"{c.name} — {c.login}",
                         render_kw={"disabled": True} if self._used_elsewhere(c) else {})
            for c in self.credentials
        ]

    def _used_elsewhere(self, credential):
        used_by = credential.mailbox
        return used_by is not None and (self.mailbox is None or used_by.id != self.mailbox.id)

    def validate_credential(self, field):
        chosen = next((c for c in self.credentials if str(c.id) == (field.data or "")), None)
        if chosen is None:
            raise ValidationError(_l("Choose the credentials of the mailbox, or add new ones."))
        if self._used_elsewhere(chosen):
            raise ValidationError(_l("These credentials are already used by the mailbox "
                                     "%(address)s.", address=chosen.login))
        self.chosen_credential = chosen

    def validate_repeat_value(self, field):
        text = (field.data or "").strip()
        if not text.isdigit():
            raise ValidationError(_l("Enter a whole number: 0 or more."))
        field.data = text
        unit = PERIOD_UNITS.get(self.repeat_unit.data)
        if unit and int(text) * unit > MAX_PERIOD:
            raise ValidationError(_l("The repeat period can be at most 365 days."))

    def validate_repeat_unit(self, field):
        if field.data not in PERIOD_UNITS:
            raise ValidationError(_l("Choose hours or days."))

    def validate_folders(self, field):
        names = []
        for name in field.data or []:
            if not name or len(name) > 500 or _CONTROL & set(name):
                raise ValidationError(_l("Not a folder name: %(name)s", name=name[:60]))
            if name not in names:
                names.append(name)
        if not names:
            raise ValidationError(_l("Choose at least one folder, e.g. INBOX."))
        if len(names) > MAX_FOLDERS:
            raise ValidationError(
                ngettext("Choose at most %(num)d folder.", "Choose at most %(num)d folders.",
                         MAX_FOLDERS)
            )
        field.data = names

    @property
    def repeat_seconds(self):
        return int(self.repeat_value.data) * PERIOD_UNITS[self.repeat_unit.data]

    def folder_choices(self):
        """Folder names to offer: INBOX, what was chosen, and what the server listed."""
        names = ["INBOX"]
        for name in list(self.folders.data or []) + list(self.known_folders.data or []):
            if name and name not in names and len(name) <= 500 and not _CONTROL & set(name):
                names.append(name)
        return names
