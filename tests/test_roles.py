"""Roles: every route of the app's URL map, opened by an owner, an editor, a viewer,
a member of another account and nobody, with ids of the account's own objects."""

import re

import pytest
from sqlalchemy import select

from tests.test_webhooks import add_webhook
from tracker.extensions import db
from tracker.integrations import apitokens
from tracker.models import Membership
from tracker.team import invite

# What each role may open, by blueprint: the product's rule, written out here (not read
# from tracker.security) so a change of the policy must change this test too.
OWNER, EDITOR, VIEWER = "owner", "editor", "viewer"
ACCESS = {
    "main": {OWNER, EDITOR, VIEWER},
    "reports": {OWNER, EDITOR, VIEWER},
    "sites": {OWNER, EDITOR},
    "mailboxes": {OWNER, EDITOR},
    "blocks": {OWNER, EDITOR},
    "rules": {OWNER, EDITOR},
    "credentials": {OWNER},
    "webhooks": {OWNER},
    "apitokens": {OWNER},
    "team": {OWNER},
    "activity": {OWNER},
}
# Routes open to anyone, or checked their own way (sign-in pages, the token API,
# the operators' pages, the invitation link, the account switcher).
OWN_CHECKS = {"static", "api", "api_v1", "ops", "auth"}
OWN_CHECK_ENDPOINTS = {"team.join", "team.join_post", "team.switch"}
# Reached, but answer 400 without the query a redirect brings (the provider's code and state).
NEEDS_QUERY = {"credentials.oauth_callback"}


def add_member(user, account, role):
    membership = Membership(account_id=account.id, user_id=user.id, role=role)
    db.session.add(membership)
    db.session.commit()
    return membership


@pytest.fixture
def world(app, factory):
    """Account A with an owner, an editor and a viewer and one object of each kind;
    account B with its owner (who is no member of A)."""
    a = factory.account("A")
    owner = factory.user(a)
    editor = factory.user(factory.account("Editor's own"))
    viewer = factory.user(factory.account("Viewer's own"))
    add_member(editor, a, EDITOR)
    viewer_membership = add_member(viewer, a, VIEWER)
    site = factory.site(a)
    credential = factory.credential(a, host="127.0.0.1", port=1)
    mailbox = factory.mailbox(a, credential=credential)
    block = factory.block(a, sites=[site])
    rule = factory.rule(a, blocks=[block])
    visit = factory.visit(site)
    email = factory.email(mailbox)
    webhook, _secret = add_webhook(a, "http://127.0.0.1:1/hook")
    token_row, _token = apitokens.create(a.id, "CRM")
    invitation, _link = invite(a.id, "new@example.com", VIEWER)
    outsider = factory.user(factory.account("B"))
    ids = {
        "site_id": site.id, "credential_id": credential.id, "mailbox_id": mailbox.id,
        "block_id": block.id, "rule_id": rule.id, "visit_id": visit.id, "email_id": email.id,
        "webhook_id": webhook.id, "token_id": token_row.id, "invitation_id": invitation.id,
        "membership_id": viewer_membership.id, "direction": "up", "kind": "metrica",
        "provider_key": "google",
    }
    # OAuth sign-in is offered for providers the operator registered (it only redirects).
    app.config["OAUTH_GOOGLE_CLIENT_ID"] = "roles-test-client"
    return {"users": {OWNER: owner, EDITOR: editor, VIEWER: viewer, "outsider": outsider},
            "ids": ids, "account": a}


def checked_rules(app):
    """(endpoint, path, methods) of every role-checked route, with sample ids."""
    return [rule for rule in app.url_map.iter_rules()
            if rule.endpoint.split(".")[0] not in OWN_CHECKS
            and rule.endpoint not in OWN_CHECK_ENDPOINTS]


def path_of(rule, ids):
    missing = set(rule.arguments) - set(ids)
    assert not missing, f"no sample value for {missing} of {rule.rule}"
    return rule.build({name: ids[name] for name in rule.arguments})[1]


def sign_in_as(client, user, account):
    client.login(user)
    if user.memberships and account is not None:
        client.post("/team/switch", data={"account_id": account.id})


def test_every_route_is_classified(app):
    """A new blueprint must say who may open it (tracker.security.BLUEPRINT_ROLES)."""
    from tracker.security import roles_for

    with app.test_request_context():
        for rule in checked_rules(app):
            blueprint = rule.endpoint.split(".")[0]
            assert blueprint in ACCESS, f"{rule.endpoint}: who may open it?"
            assert set(roles_for(rule.endpoint)) == ACCESS[blueprint], rule.endpoint


def status_of(client, method, path):
    """The status of a request, its body read within it (exports stream)."""
    response = client.open(path, method=method, data={} if method == "POST" else None,
                           buffered=True)
    return response.status_code


def deletes_last(rule):
    return any(word in rule.endpoint for word in ("delete", "remove", "revoke"))


@pytest.mark.parametrize("role", [OWNER, EDITOR, VIEWER])
def test_each_role_reaches_exactly_its_pages(app, client, world, role):
    user = world["users"][role]
    sign_in_as(client, user, world["account"])
    assert client.get("/").status_code == 200
    rules = sorted(checked_rules(app), key=deletes_last)
    reached, refused = [], []
    for rule in rules:
        allowed = role in ACCESS[rule.endpoint.split(".")[0]]
        path = path_of(rule, world["ids"])
        if "GET" in rule.methods:
            status = status_of(client, "GET", path)
            if allowed:
                ok = status < 400 or status == 422 or (
                    status == 400 and rule.endpoint in NEEDS_QUERY)
                assert ok, (rule.endpoint, status)
                reached.append(rule.endpoint)
            else:
                assert status == 403, (rule.endpoint, status)
                refused.append(rule.endpoint)
    for rule in rules:
        if "POST" not in rule.methods:
            continue
        allowed = role in ACCESS[rule.endpoint.split(".")[0]]
        status = status_of(client, "POST", path_of(rule, world["ids"]))
        if allowed:
            assert status not in (401, 403) and status < 500, (rule.endpoint, status)
            reached.append(rule.endpoint)
        else:
            assert status == 403, (rule.endpoint, status)
            refused.append(rule.endpoint)
    # Still signed in, in the same account, after all of it.
    assert client.get("/").status_code == 200
    if role == VIEWER:
        assert "rules.create" in refused and "reports.emails" in reached
        assert not any(e.startswith(("sites.", "credentials.", "team.")) for e in reached)
    if role == EDITOR:
        assert "rules.create" in reached and "credentials.index" in refused
    if role == OWNER:
        assert not refused


def test_nobody_is_sent_to_sign_in(app, client, world):
    client.get("/login")  # a CSRF token for the POSTs
    for rule in checked_rules(app):
        path = path_of(rule, world["ids"])
        for method in ("GET", "POST") if "POST" in rule.methods else ("GET",):
            if method not in rule.methods:
                continue
            response = client.open(path, method=method, data={})
            assert response.status_code == 302, (rule.endpoint, method, response.status_code)
            assert response.headers["Location"].startswith("/login"), rule.endpoint


def test_a_member_of_another_account_gets_404_on_its_objects(app, client, world):
    """B's owner may open every page of B; A's objects are not found from there."""
    sign_in_as(client, world["users"]["outsider"], None)
    for rule in checked_rules(app):
        if not set(rule.arguments) & {n for n in world["ids"] if n.endswith("_id")}:
            continue
        path = path_of(rule, world["ids"])
        if "GET" in rule.methods:
            assert status_of(client, "GET", path) == 404, rule.endpoint
        if "POST" in rule.methods:
            assert status_of(client, "POST", path) == 404, rule.endpoint


def test_the_menu_shows_only_what_the_role_may_open(client, world):
    sign_in_as(client, world["users"][VIEWER], world["account"])
    page = client.get("/").get_data(as_text=True)
    nav = page[page.index("<nav>"):page.index("</nav>")]
    assert 'href="/emails"' in nav
    for hidden in ('href="/sites/"', 'href="/rules/"', 'href="/credentials/"', 'href="/team/"'):
        assert hidden not in nav, hidden
    client.post("/logout")
    sign_in_as(client, world["users"][EDITOR], world["account"])
    nav = client.get("/").get_data(as_text=True)
    assert 'href="/rules/"' in nav and 'href="/credentials/"' not in nav
    assert 'href="/team/"' not in nav


def test_a_viewer_posting_a_rule_is_refused_and_nothing_is_stored(client, world):
    from tracker.models import Rule

    before = db.session.scalars(select(Rule.id)).all()
    sign_in_as(client, world["users"][VIEWER], world["account"])
    response = client.post("/rules/new", data={"name": "Sneaky"})
    assert response.status_code == 403
    assert db.session.scalars(select(Rule.id)).all() == before
    assert re.search(r"do not have access", response.get_data(as_text=True))


def test_only_an_owner_changes_the_account_time_zone(client, world):
    account = world["account"]
    for role in (EDITOR, VIEWER):
        sign_in_as(client, world["users"][role], account)
        page = client.get("/settings").get_data(as_text=True)
        assert 'name="timezone"' not in page
        assert "/webhooks/" not in page and "/settings/api-tokens/" not in page
        assert client.post("/settings", data={"locale": "ru", "timezone": "Asia/Tokyo"}
                           ).status_code == 302
        db.session.expire_all()
        assert db.session.get(type(account), account.id).timezone == "UTC"
        assert world["users"][role].locale == "ru"  # their own language is theirs
        client.post("/logout")
    sign_in_as(client, world["users"][OWNER], account)
    assert 'name="timezone"' in client.get("/settings").get_data(as_text=True)
    client.post("/settings", data={"locale": "", "timezone": "Asia/Tokyo"})
    db.session.expire_all()
    assert db.session.get(type(account), account.id).timezone == "Asia/Tokyo"


def test_report_pages_link_only_to_what_the_role_may_open(client, world):
    ids = world["ids"]
    sign_in_as(client, world["users"][VIEWER], world["account"])
    visit = client.get(f"/visits/{ids['visit_id']}").get_data(as_text=True)
    assert f'/sites/{ids["site_id"]}"' not in visit
    client.post("/logout")
    sign_in_as(client, world["users"][EDITOR], world["account"])
    assert f'/sites/{ids["site_id"]}"' in client.get(f"/visits/{ids['visit_id']}").get_data(as_text=True)
    form = client.get("/mailboxes/new").get_data(as_text=True)
    assert 'name="credential"' in form and "/credentials/new" not in form
    client.post("/logout")
    sign_in_as(client, world["users"][OWNER], world["account"])
    assert "/credentials/new" in client.get("/mailboxes/new").get_data(as_text=True)
