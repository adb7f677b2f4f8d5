"""The site form."""

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from tracker.domains import display_domain, parse_domains
from tracker.extensions import db
from tracker.models import SiteDomain

MAX_DOMAINS = 50


class SiteForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(_l("Give the site a name.")),
            Length(max=200, message=_l("Keep the name under 200 characters.")),
        ],
    )
    domains = TextAreaField(
        _l("Domains"),
        description=_l("One per line, e.g. example.com. Subdomains are included."),
        validators=[Length(max=10000, message=_l("Too long."))],
    )

    def __init__(self, *args, account_id, site_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account_id = account_id
        self.site_id = site_id
        self.normalized_domains = []

    def validate_domains(self, field):
        domains, invalid = parse_domains(field.data)
        if invalid:
            raise ValidationError(
                ngettext(
                    "Not a domain: %(list)s.",
                    "Not domains: %(list)s.",
                    len(invalid),
                    list=", ".join(invalid[:5]),
                )
            )
        if not domains:
            raise ValidationError(_l("Enter at least one domain."))
        if len(domains) > MAX_DOMAINS:
            raise ValidationError(_l("A site can have at most %(n)d domains.", n=MAX_DOMAINS))
        taken = db.session.scalars(
            select(SiteDomain.domain).where(
                SiteDomain.account_id == self.account_id,
                SiteDomain.domain.in_(domains),
                SiteDomain.site_id != (self.site_id or 0),
            )
        ).all()
        if taken:
            raise ValidationError(
                ngettext(
                    "Already used by another of your sites: %(list)s.",
                    "Already used by other sites of yours: %(list)s.",
                    len(taken),
                    list=", ".join(display_domain(d) for d in taken),
                )
            )
        self.normalized_domains = domains
