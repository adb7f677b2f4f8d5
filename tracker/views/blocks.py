"""Blocks: where on the site's pages the tracked address sits."""

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import and_, or_

from tracker import activity
from tracker.extensions import db
from tracker.forms.blocks import BlockForm, selector_error
from tracker.models import Block, BlockAddress, Site
from tracker.search import InvalidValue, apply, like_pattern, name_or_id
from tracker.security import safe_local_url
from tracker.selectors import SelectorError, build_selector
from tracker.views.helpers import (
    get_owned,
    is_htmx,
    list_state,
    list_terms,
    local_next,
    owned,
    paginate,
    redirect_to,
    render,
)

bp = Blueprint("blocks", __name__, url_prefix="/blocks")


@bp.before_request
@login_required
def require_login():
    """Every blocks page needs a signed-in user."""


def own_sites():
    return db.session.scalars(owned(Site).order_by(Site.name, Site.id)).all()


def own_blocks():
    return db.session.scalars(owned(Block).order_by(Block.name, Block.id)).all()


def _by_site(query, value):
    return query.where(
        Block.sites.any(
            and_(Site.account_id == current_user.account_id, name_or_id(Site.name, Site.id, value))
        )
    )


def _by_type(query, value):
    if value.lower() not in ("code", "element"):
        raise InvalidValue(value)
    return query.where(Block.placement == value.lower())


def _by_text(query, text):
    like = like_pattern(text)
    return query.where(
        or_(
            Block.name.ilike(like, escape="\\"),
            Block.selector.ilike(like, escape="\\"),
            Block.replace_address.ilike(like, escape="\\"),
            Block.addresses.any(BlockAddress.address.ilike(like, escape="\\")),
        )
    )


FILTERS = {"site": _by_site, "type": _by_type}


@bp.get("/")
def index():
    state = list_state("site")
    query, invalid = apply(owned(Block), list_terms(state, FILTERS), FILTERS, _by_text)
    page = paginate(query.order_by(Block.name, Block.id))
    return render("blocks/index.html", "results", page=page, q=state["q"], site=state["site"],
                  sites=own_sites(), invalid=invalid)


def _save(form, block):
    """Store the form on the block, keeping the address rows that stay."""
    block.name = form.name.data.strip()
    block.placement = form.placement.data
    block.sites = db.session.scalars(owned(Site).where(Site.id.in_(form.sites.data))).all()
    addresses = []
    if form.element:
        kind = form.attribute_kind.data
        block.attribute_kind = kind
        block.attribute_name = form.attribute_name.data.strip() if kind == "other" else None
        block.attribute_value = form.attribute_value.data.strip()
        block.selector = form.selector
        block.replace_address = (form.replace_address.data or "").strip() or None
    else:
        block.attribute_kind = block.attribute_name = block.attribute_value = None
        block.selector = block.replace_address = None
        addresses = form.clean_addresses
    existing = {row.address: row for row in block.addresses}
    rows = []
    for position, address in enumerate(addresses):
        row = existing.pop(address, None) or BlockAddress(address=address,
                                                          account_id=block.account_id)
        row.position = position
        rows.append(row)
    for row in existing.values():
        db.session.delete(row)
    # Removed rows go first, so that the unique (block, address) index never sees two.
    db.session.flush()
    block.addresses = rows
    db.session.commit()


def _return_to():
    """The rule form to come back to after creating a block, if a safe local one was given."""
    return local_next(url_for("rules.index"))


def _with_block(url, block_id):
    """The url with block=<id> added, so that the rule form selects the new block."""
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode({"block": block_id})


# Field names of the block form in a dialog over a rule form, which has its own "name".
MODAL_PREFIX = "block"


def _rule_form_url():
    """The rule form under the dialog (htmx tells its URL), for the no-JS link."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    path = current.path + (f"?{current.query}" if current.query else "")
    return safe_local_url(path, url_for("rules.index"))


@bp.get("/new")
def new():
    if request.args.get("modal") == "1" and is_htmx():
        form = BlockForm(sites=own_sites(), prefix=MODAL_PREFIX)
        return render("blocks/_dialog.html", form=form)
    form = BlockForm(sites=own_sites())
    return render("blocks/form.html", form=form, blk=None, next=_return_to())


@bp.post("/new")
def create():
    modal = request.args.get("modal") == "1"
    form = BlockForm(sites=own_sites(), prefix=MODAL_PREFIX if modal else "")
    if not form.validate_on_submit():
        if modal:
            return render("blocks/_dialog.html", form=form, status=422)
        return render("blocks/form.html", "form", form=form, blk=None, next=_return_to(),
                      status=422)
    block = Block(account_id=current_user.account_id)
    db.session.add(block)
    _save(form, block)
    activity.record("created", block)
    if modal:
        # Close the dialog and refresh the rule form's blocks with the new one ticked.
        selected = set(request.form.getlist("blocks", type=int)) | {block.id}
        return render_template("blocks/_created.html", blocks=own_blocks(), selected=selected,
                               next=_rule_form_url())
    flash(_("Block “%(name)s” created.", name=block.name), "success")
    target = _return_to()
    if target:
        return redirect_to(_with_block(target, block.id))
    return redirect_to(url_for("blocks.show", block_id=block.id))


@bp.get("/selector")
def selector_preview():
    """The selector that the element fields build, or why they build none (for htmx)."""
    modal = request.args.get("prefix") == MODAL_PREFIX
    prefix = MODAL_PREFIX + "-" if modal else ""
    kind, name, value = (
        request.args.get(prefix + key, "", type=str)[:1000]
        for key in ("attribute_kind", "attribute_name", "attribute_value")
    )
    selector = error = None
    if value.strip():
        try:
            selector = build_selector(kind, value, name)
        except SelectorError as exc:
            error = selector_error(exc.reason)
    return render("blocks/_selector.html", "preview", selector=selector, error=error,
                  prefix=MODAL_PREFIX if modal else "")


@bp.get("/<int:block_id>")
def show(block_id):
    block = get_owned(Block, block_id)
    return render("blocks/show.html", blk=block)


def _edit_form(block):
    return BlockForm(
        sites=own_sites(),
        data={
            "name": block.name,
            "sites": block.site_ids,
            "placement": block.placement,
            "addresses": "\n".join(block.address_values),
            "attribute_kind": block.attribute_kind or "id",
            "attribute_name": block.attribute_name or "",
            "attribute_value": block.attribute_value or "",
            "replace_address": block.replace_address or "",
        },
    )


@bp.get("/<int:block_id>/edit")
def edit(block_id):
    block = get_owned(Block, block_id)
    form = _edit_form(block)
    form.selector = block.selector
    return render("blocks/form.html", form=form, blk=block, next=None)


@bp.post("/<int:block_id>/edit")
def update(block_id):
    block = get_owned(Block, block_id)
    form = BlockForm(sites=own_sites())
    if not form.validate_on_submit():
        return render("blocks/form.html", "form", form=form, blk=block, next=None, status=422)
    _save(form, block)
    activity.record("changed", block)
    flash(_("Block “%(name)s” saved.", name=block.name), "success")
    return redirect_to(url_for("blocks.show", block_id=block.id))


@bp.get("/<int:block_id>/delete")
def confirm_delete(block_id):
    block = get_owned(Block, block_id)
    return render("blocks/delete.html", blk=block)


@bp.post("/<int:block_id>/delete")
def delete_block(block_id):
    block = get_owned(Block, block_id)
    name = block.name
    orphans = [rule.name for rule in block.rules if rule.block_ids == [block.id]]
    activity.record("deleted", block, commit=False)
    db.session.delete(block)
    db.session.commit()
    flash(_("Block “%(name)s” deleted.", name=name), "success")
    if orphans:
        flash(_("These rules have no block left and show nothing: %(list)s.",
                list=", ".join(orphans)), "warning")
    return redirect_to(url_for("blocks.index"))
