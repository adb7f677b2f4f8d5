"""The block form: name, sites, and where the address sits on the page."""

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from tracker.addresses import AddressError, normalize_address, parse_addresses
from tracker.selectors import SelectorError, build_selector

MAX_ADDRESSES = 20


def address_list(text, keep_as_typed=False):
    """The addresses typed one per line, or a ValidationError naming the bad ones."""
    addresses, invalid = parse_addresses(text, keep_as_typed=keep_as_typed)
    if invalid:
        raise ValidationError(
            ngettext(
                "Not an email address: %(list)s.",
                "Not email addresses: %(list)s.",
                len(invalid),
                list=", ".join(invalid[:5]),
            )
        )
    if not addresses:
        raise ValidationError(_l("Enter at least one address."))
    return addresses

PLACEMENT_LABELS = {
    "code": _l("Find the address in the page code"),
    "element": _l("An element of the page"),
}
ATTRIBUTE_LABELS = {
    "id": _l("Attribute id"),
    "class": _l("Attribute class"),
    "other": _l("Another attribute"),
}
SELECTOR_MESSAGES = {
    "kind": _l("Choose id, class or another attribute."),
    "empty": _l("Enter the attribute's value."),
    "control": _l("The value contains control characters."),
    "spaces": _l("An id cannot contain spaces."),
    "name": _l("Enter an attribute name: letters, digits, “-”, “_”, “:” or “.”, such as data-role."),
    "too_long": _l("The value is too long."),
}


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes, one per choice."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def selector_error(reason):
    """The user's message for a SelectorError reason."""
    return SELECTOR_MESSAGES.get(reason, SELECTOR_MESSAGES["empty"])


class BlockForm(FlaskForm):
    name = StringField(
        _l("Name"),
        description=_l("For example “Contact email” or “Footer address”."),
        validators=[
            DataRequired(_l("Give the block a name.")),
            Length(max=200, message=_l("Keep the name under 200 characters.")),
        ],
    )
    sites = MultiCheckboxField(_l("Sites"), coerce=int)
    placement = RadioField(
        _l("Where the address sits"),
        choices=[SelectChoice(value, label) for value, label in PLACEMENT_LABELS.items()],
        default="code",
    )
    addresses = TextAreaField(
        _l("Addresses as they appear on the site"),
        description=_l("One per line. The script looks for them in the page text and in "
                       "mailto: links."),
        validators=[Length(max=10000, message=_l("Too long."))],
    )
    attribute_kind = RadioField(
        _l("Attribute"),
        choices=[SelectChoice(value, label) for value, label in ATTRIBUTE_LABELS.items()],
        default="id",
    )
    attribute_name = StringField(
        _l("Attribute name"),
        description=_l("Only for another attribute, e.g. data-role or itemprop."),
        validators=[Length(max=100, message=_l("Keep the attribute name under 100 characters."))],
    )
    attribute_value = StringField(
        _l("Value"),
        description=_l("Several classes separated by spaces must all be present."),
        validators=[Length(max=500, message=_l("Keep the value under 500 characters."))],
    )
    replace_address = StringField(
        _l("Address inside the element"),
        description=_l("Optional. Leave empty when the element's whole text is the address."),
        validators=[Length(max=320, message=_l("Too long."))],
    )

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.sites.choices = [SelectChoice(site.id, site.name) for site in sites]
        self.clean_addresses = []
        self.selector = None

    @property
    def element(self):
        return self.placement.data == "element"

    def validate_sites(self, field):
        if not field.data:
            raise ValidationError(_l("Choose at least one site."))

    def validate_addresses(self, field):
        if self.element:
            return
        addresses = address_list(field.data, keep_as_typed=True)
        if len(addresses) > MAX_ADDRESSES:
            raise ValidationError(
                _l("A block can have at most %(n)d addresses.", n=MAX_ADDRESSES)
            )
        self.clean_addresses = addresses

    def validate_attribute_name(self, field):
        if not self.element or self.attribute_kind.data != "other":
            return
        try:
            build_selector("other", "x", field.data)
        except SelectorError as exc:
            raise ValidationError(selector_error(exc.reason)) from None

    def validate_attribute_value(self, field):
        if not self.element:
            return
        try:
            self.selector = build_selector(
                self.attribute_kind.data, field.data, self.attribute_name.data
            )
        except SelectorError as exc:
            if exc.reason != "name":  # shown on the name field
                raise ValidationError(selector_error(exc.reason)) from None

    def validate_replace_address(self, field):
        if not self.element or not (field.data or "").strip():
            return
        try:
            normalize_address(field.data)
        except AddressError:
            raise ValidationError(_l("Enter a valid email address.")) from None
