"""Rules: which visitors see which address, in priority order."""

import time

from flask import (
    Blueprint, abort, flash, redirect, render_template, request, url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import and_, or_

from tracker import activity, leases
from tracker.domains import display_domain
from tracker.extensions import db, redis_client
from tracker.forms.rules import (
    CHANNEL_LABELS,
    FIELD_LABELS,
    MAX_CONDITIONS,
    MODE_LABELS,
    OPERATOR_LABELS,
    RuleForm,
)
from tracker.models import Block, PoolAddress, Rule, RuleCondition, Site
from tracker.models.rules import DEFAULT_RESERVATION_MINUTES
from tracker.rules import (
    address_warnings,
    next_priority,
    ordered_rules,
    rule_addresses,
    shared_addresses,
    swap_priorities,
)
from tracker.search import InvalidValue, apply, like_pattern, name_or_id, parse_bool
from tracker.views.blocks import own_blocks, own_sites
from tracker.views.helpers import (
    get_owned,
    is_htmx,
    list_args,
    list_state,
    list_terms,
    local_next,
    owned,
    paginate,
    redirect_to,
    render,
)

bp = Blueprint("rules", __name__, url_prefix="/rules")

# The list's select boxes; each is also a key of the search language.
SELECTS = ("type", "block", "site", "active")
TYPES = ("static", "dynamic", "subaddress", "catchall", "pool")


@bp.before_request
@login_required
def require_login():
    """Every rules page needs a signed-in user."""


@bp.context_processor
def labels():
    return {
        "field_labels": FIELD_LABELS,
        "operator_labels": OPERATOR_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "mode_labels": MODE_LABELS,
    }


def _by_type(query, value):
    value = value.lower()
    if value in ("static", "dynamic"):
        return query.where(Rule.kind == value)
    if value in TYPES:
        return query.where(Rule.kind == "dynamic", Rule.dynamic_mode == value)
    raise InvalidValue(value)


def _by_block(query, value):
    account_id = current_user.account_id
    return query.where(
        Rule.blocks.any(and_(Block.account_id == account_id,
                             name_or_id(Block.name, Block.id, value)))
    )


def _by_site(query, value):
    account_id = current_user.account_id
    site = Block.sites.any(and_(Site.account_id == account_id,
                                name_or_id(Site.name, Site.id, value)))
    return query.where(Rule.blocks.any(and_(Block.account_id == account_id, site)))


def _by_active(query, value):
    return query.where(Rule.active == parse_bool(value))


def _by_text(query, text):
    like = like_pattern(text)
    return query.where(
        or_(
            Rule.name.ilike(like, escape="\\"),
            Rule.static_address.ilike(like, escape="\\"),
            Rule.base_address.ilike(like, escape="\\"),
            Rule.catchall_domain.ilike(like, escape="\\"),
            Rule.fallback_address.ilike(like, escape="\\"),
            Rule.pool_addresses.any(PoolAddress.address.ilike(like, escape="\\")),
            Rule.blocks.any(Block.name.ilike(like, escape="\\")),
        )
    )


FILTERS = {"type": _by_type, "block": _by_block, "site": _by_site, "active": _by_active}


def _filtered(state):
    """The account's rules narrowed by the search and the selects, in priority order."""
    return apply(ordered_rules(current_user.account_id), list_terms(state, FILTERS), FILTERS,
                 _by_text)


def _ranks():
    """{rule id: its place 1..n in the account's priority order}."""
    ids = db.session.scalars(ordered_rules(current_user.account_id).with_only_columns(Rule.id))
    return {rule_id: place for place, rule_id in enumerate(ids, 1)}


def _render_list(state):
    query, invalid = _filtered(state)
    return render(
        "rules/index.html", "results",
        page=paginate(query), state=state, args=list_args(state), invalid=invalid,
        filtered=any(state.values()),
        ranks=_ranks(), blocks=own_blocks(), sites=own_sites(),
    )


@bp.get("/")
def index():
    return _render_list(list_state(*SELECTS))


@bp.post("/<int:rule_id>/move/<any(up, down):direction>")
def move(rule_id, direction):
    """Swap the rule with its neighbour in the list as filtered (hidden rules keep their place)."""
    rule = get_owned(Rule, rule_id)
    state = list_state(*SELECTS)
    query, _invalid = _filtered(state)
    ids = db.session.scalars(query.with_only_columns(Rule.id)).all()
    if rule.id not in ids:
        ids = list(_ranks())
    place = ids.index(rule.id) + (-1 if direction == "up" else 1)
    if 0 <= place < len(ids):
        swap_priorities(rule, get_owned(Rule, ids[place]))
        db.session.commit()
        activity.record("changed", rule)
    if is_htmx():
        return _render_list(state)
    return redirect(url_for("rules.index", **list_args(state)))


@bp.post("/<int:rule_id>/active")
def set_active(rule_id):
    rule = get_owned(Rule, rule_id)
    value = request.form.get("active", "")
    if value not in ("0", "1"):
        abort(400)
    rule.active = value == "1"
    db.session.commit()
    activity.record("changed", rule)
    back = local_next(url_for("rules.index"))
    if is_htmx():
        return render_template("rules/_active.html", rule=rule, next=back)
    if rule.active:
        flash(_("Rule “%(name)s” is on.", name=rule.name), "success")
    else:
        flash(_("Rule “%(name)s” is off.", name=rule.name), "success")
    return redirect(back or url_for("rules.show", rule_id=rule.id))


def _form(rule=None, **kwargs):
    return RuleForm(account_id=current_user.account_id, blocks=own_blocks(),
                    rule_id=rule.id if rule else None, **kwargs)


def _rework(form):
    """Apply an "add/remove condition" button; True when the form is shown again unsaved."""
    action = request.form.get("action", "")
    entries = form.conditions.entries
    if action == "add-condition":
        if len(entries) < MAX_CONDITIONS:
            form.conditions.append_entry()
        form.segment.data = "conditions"
        return True
    if action.startswith("remove-condition-"):
        name = "conditions-" + action.removeprefix("remove-condition-")
        form.conditions.entries = [entry for entry in entries if entry.name != name]
        if not form.conditions.entries:
            form.conditions.append_entry()
        return True
    return False


def _form_warnings(form, rule=None):
    """Warnings for the addresses the form holds that passed validation: addresses no
    mailbox receives, and addresses another rule uses too (with the rule that wins)."""
    mode, clean = form.mode, form.clean
    if mode == "static":
        addresses = [clean.get("static_address")]
    elif mode == "subaddress":
        addresses = [clean.get("base_address")]
    elif mode == "catchall":
        addresses = [f"*@{clean['catchall_domain']}"] if clean.get("catchall_domain") else []
    else:
        addresses = list(form.clean_pool)
    if mode != "static" and clean.get("fallback_address"):
        addresses.append(clean["fallback_address"])
    shared = shared_addresses(
        current_user.account_id,
        rule_addresses(mode, clean.get("static_address"), form.clean_pool,
                       clean.get("fallback_address")),
        rule_id=rule.id if rule else None, active=bool(form.active.data),
        priority=rule.priority if rule else None)
    return address_warnings(current_user.account_id, addresses) + shared


def _rule_warnings(rule):
    """The warnings of a stored rule (its page and its form before any change)."""
    shared = shared_addresses(
        current_user.account_id,
        rule_addresses(rule.mode, rule.static_address, rule.pool_values, rule.fallback_address),
        rule_id=rule.id, active=rule.active, priority=rule.priority)
    return address_warnings(current_user.account_id, rule.addresses) + shared


def _show_form(form, rule, status):
    return render("rules/form.html", "form", form=form, rule=rule, blocks=own_blocks(),
                  warnings=_form_warnings(form, rule), status=status)


def _save(form, rule):
    """Store the form on the rule, keeping the pool rows of addresses that stay."""
    mode, clean = form.mode, form.clean
    rule.name = form.name.data.strip()
    rule.active = form.active.data
    rule.match_all = form.segment.data != "conditions"
    rule.kind = "static" if mode == "static" else "dynamic"
    rule.dynamic_mode = None if mode == "static" else mode
    rule.static_address = clean.get("static_address") if mode == "static" else None
    rule.base_address = clean.get("base_address") if mode == "subaddress" else None
    rule.catchall_domain = clean.get("catchall_domain") if mode == "catchall" else None
    rule.fallback_address = clean.get("fallback_address") if mode != "static" else None
    rule.reservation_minutes = clean.get(
        "reservation_minutes", rule.reservation_minutes or DEFAULT_RESERVATION_MINUTES
    )
    rule.blocks = db.session.scalars(owned(Block).where(Block.id.in_(form.blocks.data))).all()
    rule.conditions = [
        RuleCondition(account_id=rule.account_id, position=position, field=condition.field,
                      operator=condition.operator, value=condition.value)
        for position, condition in enumerate([] if rule.match_all else form.clean_conditions)
    ]
    existing = {row.address.lower(): row for row in rule.pool_addresses}
    rows = []
    for position, address in enumerate(form.clean_pool if mode == "pool" else []):
        row = existing.pop(address.lower(), None) or PoolAddress(account_id=rule.account_id)
        row.address, row.position = address, position
        rows.append(row)
    for row in existing.values():
        db.session.delete(row)
    # Removed rows go first, so that the unique (account, address) index never sees two.
    db.session.flush()
    rule.pool_addresses = rows
    db.session.commit()


@bp.get("/new")
def new():
    form = _form(data={"blocks": request.args.getlist("block", type=int)})
    return render("rules/form.html", form=form, rule=None, blocks=own_blocks(), warnings=[])


@bp.post("/new")
def create():
    form = _form()
    if _rework(form):
        return _show_form(form, None, 200)
    if not form.validate_on_submit():
        return _show_form(form, None, 422)
    rule = Rule(account_id=current_user.account_id, priority=next_priority(current_user.account_id))
    db.session.add(rule)
    _save(form, rule)
    activity.record("created", rule)
    flash(_("Rule “%(name)s” created.", name=rule.name), "success")
    return redirect_to(url_for("rules.show", rule_id=rule.id))


@bp.get("/<int:rule_id>")
def show(rule_id):
    from tracker.reports import pools

    rule = get_owned(Rule, rule_id)
    usage, usage_days, advice = None, [], None
    if rule.dynamic_mode == "pool":
        usage = leases.usage(redis_client(), rule.id, int(time.time() * 1000))
        usage_days = pools.usage_rows(rule)
        advice = pools.suggestion(usage_days, len(rule.pool_addresses))
    return render("rules/show.html", rule=rule, ranks=_ranks(), usage=usage,
                  usage_days=usage_days, usage_advice=advice,
                  warnings=_rule_warnings(rule))


@bp.get("/<int:rule_id>/edit")
def edit(rule_id):
    rule = get_owned(Rule, rule_id)
    conditions = [{"field": c.field, "operator": c.operator, "value": c.value}
                  for c in rule.conditions]
    form = _form(rule, data={
        "name": rule.name,
        "active": rule.active,
        "blocks": rule.block_ids + request.args.getlist("block", type=int),
        "segment": "all" if rule.match_all else "conditions",
        # One empty row after the conditions, ready for another.
        "conditions": conditions + [{}],
        "kind": rule.kind,
        "static_address": rule.static_address or "",
        "dynamic_mode": rule.dynamic_mode or "subaddress",
        "base_address": rule.base_address or "",
        "catchall_domain": display_domain(rule.catchall_domain) if rule.catchall_domain else "",
        "pool_addresses": "\n".join(rule.pool_values),
        "reservation_minutes": str(rule.reservation_minutes),
        "fallback_address": rule.fallback_address or "",
    })
    return render("rules/form.html", form=form, rule=rule, blocks=own_blocks(),
                  warnings=_rule_warnings(rule))


@bp.post("/<int:rule_id>/edit")
def update(rule_id):
    rule = get_owned(Rule, rule_id)
    form = _form(rule)
    if _rework(form):
        return _show_form(form, rule, 200)
    if not form.validate_on_submit():
        return _show_form(form, rule, 422)
    _save(form, rule)
    activity.record("changed", rule)
    flash(_("Rule “%(name)s” saved.", name=rule.name), "success")
    return redirect_to(url_for("rules.show", rule_id=rule.id))


@bp.get("/<int:rule_id>/delete")
def confirm_delete(rule_id):
    rule = get_owned(Rule, rule_id)
    return render("rules/delete.html", rule=rule)


@bp.post("/<int:rule_id>/delete")
def delete_rule(rule_id):
    rule = get_owned(Rule, rule_id)
    name = rule.name
    activity.record("deleted", rule, commit=False)
    db.session.delete(rule)
    db.session.commit()
    flash(_("Rule “%(name)s” deleted.", name=name), "success")
    return redirect_to(url_for("rules.index"))
