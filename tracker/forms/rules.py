"""The rule form: name, blocks, segment, and the address (static or dynamic)."""

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError

from tracker.addresses import AddressError, normalize_address
from tracker.domains import DomainError, normalize_domain
from tracker.extensions import db
from tracker.forms.blocks import MultiCheckboxField, address_list
from tracker.models import PoolAddress
from tracker.models.rules import DEFAULT_RESERVATION_MINUTES
from tracker.segments import MAX_PATTERN, MAX_VALUE, ConditionError, check_condition

MAX_CONDITIONS = 20
MAX_POOL = 500
MAX_RESERVATION = 7 * 24 * 60

# utm_* are the parameters' own names in every language.
FIELD_LABELS = {
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "referrer_domain": _l("Referrer domain"),
    "channel": _l("Channel"),
    "landing_url": _l("Landing page URL"),
}
OPERATOR_LABELS = {
    "equals": _l("equals"),
    "not_equals": _l("does not equal"),
    "contains": _l("contains"),
    "starts_with": _l("starts with"),
    "regex": _l("matches regex"),
    "empty": _l("is empty"),
    "not_empty": _l("is not empty"),
}
CHANNEL_LABELS = {
    "paid": _l("Paid ads"),
    "organic": _l("Organic search"),
    "social": _l("Social networks"),
    "email": _l("Email"),
    "referral": _l("Referral"),
    "direct": _l("Direct"),
}
KIND_LABELS = {"static": _l("Static"), "dynamic": _l("Dynamic")}
MODE_LABELS = {
    "static": _l("Static"),
    "subaddress": _l("Sub-address"),
    "catchall": _l("Catch-all domain"),
    "pool": _l("Pool of addresses"),
}
CONDITION_MESSAGES = {
    "field": _l("Choose a field."),
    "operator": _l("Choose an operator."),
    "value_required": _l("Enter a value."),
    "value_too_long": _l("Keep the value under %(n)d characters.", n=MAX_VALUE),
    "pattern_too_long": _l("Keep the regular expression under %(n)d characters.", n=MAX_PATTERN),
    "pattern_invalid": _l("Not a valid regular expression."),
    "pattern_nested": _l("A repeated group that contains a repetition or “|”, like (a+)+, "
                         "can make matching hang. Rewrite the expression."),
    "channel": _l("A channel is one of: paid, organic, social, email, referral, direct."),
    "domain": _l("Enter a domain, such as google.com."),
}
INVALID_ADDRESS = _l("Enter a valid email address.")


class ConditionForm(Form):
    """One row of the segment: field, operator, value. A row without a field is unused."""

    field = SelectField(
        _l("Field"),
        choices=[SelectChoice("", "—")]
        + [SelectChoice(value, label) for value, label in FIELD_LABELS.items()],
        default="",
    )
    operator = SelectField(
        _l("Operator"),
        choices=[SelectChoice(value, label) for value, label in OPERATOR_LABELS.items()],
        default="equals",
    )
    value = StringField(_l("Value"))


def _address(field, required_message):
    """Normalise the address in a field, or raise the field's inline error."""
    if not (field.data or "").strip():
        raise ValidationError(required_message)
    try:
        return normalize_address(field.data)
    except AddressError:
        raise ValidationError(INVALID_ADDRESS) from None


class RuleForm(FlaskForm):
    name = StringField(
        _l("Name"),
        description=_l("The site, platform or visitor segment this rule serves."),
        validators=[
            DataRequired(_l("Give the rule a name.")),
            Length(max=200, message=_l("Keep the name under 200 characters.")),
        ],
    )
    active = BooleanField(_l("Active"), default=True)
    blocks = MultiCheckboxField(_l("Blocks"), coerce=int)
    segment = RadioField(
        _l("Visitors"),
        choices=[
            SelectChoice("all", _l("All visitors")),
            SelectChoice("conditions", _l("Visitors that meet every condition")),
        ],
        default="all",
    )
    conditions = FieldList(FormField(ConditionForm), min_entries=1, max_entries=MAX_CONDITIONS)
    kind = RadioField(
        _l("Type"),
        choices=[
            SelectChoice("static", _l("Static: one address for everyone in the segment")),
            SelectChoice("dynamic", _l("Dynamic: a unique address for each visitor")),
        ],
        default="static",
    )
    static_address = StringField(_l("Address"))
    dynamic_mode = RadioField(
        _l("Dynamic addresses"),
        choices=[
            SelectChoice("subaddress", _l("Sub-address: local+TOKEN@domain")),
            SelectChoice("catchall", _l("Catch-all domain: TOKEN@domain")),
            SelectChoice("pool", _l("Pool of real addresses")),
        ],
        default="subaddress",
    )
    base_address = StringField(
        _l("Base address"),
        description=_l("Your mailbox, e.g. sales@example.com; visitors see sales+TOKEN@example.com."),
    )
    catchall_domain = StringField(
        _l("Domain"),
        description=_l("A domain whose every address reaches your mailbox; visitors see "
                       "TOKEN@domain."),
    )
    pool_addresses = TextAreaField(
        _l("Pool addresses"),
        description=_l("Real addresses that reach your mailbox, one per line."),
        validators=[Length(max=100000, message=_l("Too long."))],
    )
    reservation_minutes = StringField(
        _l("Reservation, minutes"),
        description=_l("How long an address stays with a visitor after their last activity."),
        default=str(DEFAULT_RESERVATION_MINUTES),
    )
    fallback_address = StringField(
        _l("Fallback address"),
        description=_l("Shown when every pool address is taken, and to crawlers instead of "
                       "an address of their own. Optional for sub-address and catch-all rules."),
    )

    def __init__(self, *args, account_id, blocks, rule_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account_id = account_id
        self.rule_id = rule_id
        self.blocks.choices = [SelectChoice(block.id, block.name) for block in blocks]
        self.clean = {}
        self.clean_conditions = []
        self.clean_pool = []

    @property
    def mode(self):
        return "static" if self.kind.data == "static" else self.dynamic_mode.data

    def validate_blocks(self, field):
        if not field.data:
            raise ValidationError(_l("Choose at least one block."))

    def validate_conditions(self, field):
        if self.segment.data != "conditions":
            return
        failed = False
        self.clean_conditions = []
        for entry in field.entries:
            row = entry.form
            if not row.field.data:
                continue
            try:
                self.clean_conditions.append(
                    check_condition(row.field.data, row.operator.data, row.value.data)
                )
            except ConditionError as exc:
                target = {"field": row.field, "operator": row.operator}.get(exc.reason, row.value)
                target.errors = list(target.errors) + [CONDITION_MESSAGES[exc.reason]]
                failed = True
        if failed:
            raise ValidationError(_l("Check the conditions below."))
        if not self.clean_conditions:
            raise ValidationError(_l("Add at least one condition, or choose all visitors."))

    def validate_static_address(self, field):
        if self.mode == "static":
            self.clean["static_address"] = _address(field, _l("Enter the address to show."))

    def validate_base_address(self, field):
        if self.mode != "subaddress":
            return
        address = _address(field, _l("Enter the base address."))
        if "+" in address.rpartition("@")[0]:
            raise ValidationError(_l("The base address must not contain “+”."))
        self.clean["base_address"] = address

    def validate_catchall_domain(self, field):
        if self.mode != "catchall":
            return
        text = (field.data or "").strip()
        if not text:
            raise ValidationError(_l("Enter the catch-all domain."))
        try:
            domain = normalize_domain(text)
        except DomainError:
            domain = None
        if domain is None or "." not in domain or domain.replace(".", "").isdigit():
            raise ValidationError(_l("Enter a domain, such as example.com."))
        self.clean["catchall_domain"] = domain

    def validate_pool_addresses(self, field):
        if self.mode != "pool":
            return
        addresses = address_list(field.data)
        if len(addresses) > MAX_POOL:
            raise ValidationError(_l("A pool can have at most %(n)d addresses.", n=MAX_POOL))
        taken = db.session.scalars(
            select(PoolAddress.address).where(
                PoolAddress.account_id == self.account_id,
                func.lower(PoolAddress.address).in_([a.lower() for a in addresses]),
                PoolAddress.rule_id != (self.rule_id or 0),
            )
        ).all()
        if taken:
            raise ValidationError(
                ngettext(
                    "Already in the pool of another rule: %(list)s.",
                    "Already in the pools of other rules: %(list)s.",
                    len(taken),
                    list=", ".join(sorted(taken)[:5]),
                )
            )
        self.clean_pool = addresses

    def validate_reservation_minutes(self, field):
        if self.mode != "pool":
            return
        text = (field.data or "").strip()
        # Digits only and few of them: int() of thousands of digits is slow, then refused.
        digits = text.isascii() and text.isdigit() and len(text) <= 6
        if not digits or not 1 <= int(text) <= MAX_RESERVATION:
            raise ValidationError(
                _l("Enter a whole number of minutes from 1 to %(n)d.", n=MAX_RESERVATION)
            )
        self.clean["reservation_minutes"] = int(text)

    def validate_fallback_address(self, field):
        if self.mode == "static" or (self.mode != "pool" and not (field.data or "").strip()):
            return
        address = _address(field, _l("Enter the fallback address."))
        if address.lower() in {a.lower() for a in self.clean_pool}:
            raise ValidationError(_l("The fallback address must not be one of the pool addresses."))
        self.clean["fallback_address"] = address
