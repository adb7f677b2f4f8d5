"""Sites: the websites that carry the tracking snippet."""

from flask import Blueprint, current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import exists, or_

from tracker import activity, siteregistry
from tracker.extensions import db
from tracker.forms.sites import SiteForm
from tracker.models import Site, SiteDomain
from tracker.models.sites import new_site_key
from tracker.search import like_pattern
from tracker.views.helpers import get_owned, owned, paginate, redirect_to, render, search_term

bp = Blueprint("sites", __name__, url_prefix="/sites")


@bp.before_request
@login_required
def require_login():
    """Every sites page needs a signed-in user."""


def _filtered(q):
    query = owned(Site)
    if q:
        like = like_pattern(q)
        query = query.where(
            or_(
                Site.name.ilike(like, escape="\\"),
                exists().where(SiteDomain.site_id == Site.id,
                               SiteDomain.domain.ilike(like, escape="\\")),
            )
        )
    return query.order_by(Site.name, Site.id)


@bp.get("/")
def index():
    q = search_term()
    page = paginate(_filtered(q))
    return render("sites/index.html", "results", page=page, q=q)


def _save(form, site):
    """Store the form on the site, keeping the rows of domains that stay."""
    site.name = form.name.data.strip()
    existing = {row.domain: row for row in site.domains}
    rows = []
    for position, domain in enumerate(form.normalized_domains):
        row = existing.pop(domain, None) or SiteDomain(domain=domain, account_id=site.account_id)
        row.position = position
        rows.append(row)
    for row in existing.values():
        db.session.delete(row)
    # Removed domains go first, so that the unique (account, domain) index never sees two.
    db.session.flush()
    site.domains = rows
    db.session.commit()
    siteregistry.forget(site.key)


@bp.get("/new")
def new():
    return render("sites/form.html", form=SiteForm(account_id=current_user.account_id), site=None)


@bp.post("/new")
def create():
    form = SiteForm(account_id=current_user.account_id)
    if not form.validate_on_submit():
        return render("sites/form.html", "form", form=form, site=None, status=422)
    site = Site(account_id=current_user.account_id)
    db.session.add(site)
    _save(form, site)
    activity.record("created", site)
    flash(_("Site “%(name)s” created. Install the snippet below on its pages.", name=site.name),
          "success")
    return redirect_to(url_for("sites.show", site_id=site.id))


@bp.get("/<int:site_id>")
def show(site_id):
    site = get_owned(Site, site_id)
    return render("sites/show.html", site=site, snippet=snippet(site))


@bp.get("/<int:site_id>/edit")
def edit(site_id):
    site = get_owned(Site, site_id)
    form = SiteForm(
        account_id=current_user.account_id,
        site_id=site.id,
        data={"name": site.name, "domains": "\n".join(site.domain_names)},
    )
    return render("sites/form.html", form=form, site=site)


@bp.post("/<int:site_id>/edit")
def update(site_id):
    site = get_owned(Site, site_id)
    form = SiteForm(account_id=current_user.account_id, site_id=site.id)
    if not form.validate_on_submit():
        return render("sites/form.html", "form", form=form, site=site, status=422)
    _save(form, site)
    activity.record("changed", site)
    flash(_("Site “%(name)s” saved.", name=site.name), "success")
    return redirect_to(url_for("sites.show", site_id=site.id))


@bp.get("/<int:site_id>/delete")
def confirm_delete(site_id):
    site = get_owned(Site, site_id)
    return render("sites/delete.html", site=site)


@bp.post("/<int:site_id>/delete")
def delete_site(site_id):
    site = get_owned(Site, site_id)
    name, key = site.name, site.key
    activity.record("deleted", site, commit=False)
    db.session.delete(site)
    db.session.commit()
    siteregistry.forget(key)
    flash(_("Site “%(name)s” deleted.", name=name), "success")
    return redirect_to(url_for("sites.index"))


@bp.post("/<int:site_id>/key")
def regenerate_key(site_id):
    site = get_owned(Site, site_id)
    old_key, site.key = site.key, new_site_key()
    db.session.commit()
    activity.record("changed", site)
    siteregistry.forget(old_key)
    flash(_("A new site key was issued. Replace the snippet on the site's pages."), "warning")
    return redirect_to(url_for("sites.show", site_id=site.id))


def snippet(site):
    """The <script> tag that the site's pages include."""
    base = current_app.config["BASE_URL"] or request.url_root.rstrip("/")
    return (
        f'<script async src="{base}/static/js/tracker.js" data-site="{site.key}"></script>'
    )
