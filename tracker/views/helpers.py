"""What every resource view shares: fragment rendering, account scoping, redirects, list state."""

from flask import abort, current_app, make_response, redirect, render_template, request
from flask_login import current_user
from jinja2_fragments.flask import render_block
from sqlalchemy import select

from tracker import textclean
from tracker.extensions import db
from tracker.search import Term, parse


def is_htmx():
    """True for an htmx request that wants a fragment (not a full page)."""
    hx = request.htmx
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(template, block=None, status=200, **context):
    """Render the page, or only its named block when htmx asked for a fragment."""
    if block and is_htmx():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


def redirect_to(url):
    """A redirect that htmx follows as a full navigation, and browsers as usual."""
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url)


def get_owned(model, object_id):
    """Load one row of the current user's account by id, or answer 404."""
    if not 0 < object_id < 2**63:
        # No such row, and the database driver would refuse the number.
        abort(404)
    row = db.session.scalar(
        select(model).where(model.id == object_id, model.account_id == current_user.account_id)
    )
    if row is None:
        abort(404)
    return row


def owned(model):
    """A select() of the current account's rows of model."""
    return select(model).where(model.account_id == current_user.account_id)


def paginate(query):
    """Paginate a select() by the ?page= argument (bad values fall back to page 1)."""
    page = request.args.get("page", 1, type=int)
    return db.paginate(
        query,
        page=max(page, 1),
        per_page=current_app.config["PAGE_SIZE"],
        error_out=False,
    )


def search_term():
    """The ?q= search text, without control characters, trimmed and bounded."""
    return textclean.one_line(request.args.get("q", "", type=str)).strip()[:200]


def list_state(*selects):
    """A list page's search and select filters from the query string: {"q": text, select: value}.

    Each select is a key of the list's search language too (see list_terms)."""
    state = {"q": search_term()}
    for key in selects:
        state[key] = request.args.get(key, "", type=str).strip()[:50]
    return state


def list_terms(state, filters):
    """The search terms of a list state: the parsed search text, then one per chosen select."""
    return parse(state["q"], filters) + [
        Term(key, value) for key, value in state.items() if key != "q" and value
    ]


def list_args(state):
    """The non-empty search and filters (and the page number past 1), for links that keep them."""
    args = {key: value for key, value in state.items() if value}
    page = request.args.get("page", 1, type=int)
    if page > 1:
        args["page"] = page
    return args


def local_next(prefix="/"):
    """The ?next= path when it is a page of this app under prefix, else None (no open redirects)."""
    from tracker.security import safe_local_url

    return safe_local_url(request.args.get("next", "", type=str), prefix)
