"""The activity log: every create, change and delete of a mailbox, credential, block, rule,
site, webhook or API token made through the admin is recorded for the account, and
shown to its owners (escaped, one account's entries only)."""

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tracker.extensions import db
from tracker.models import (
    ActivityEntry, ApiToken, Block, Credential, Mailbox, Membership, Rule, Site, Webhook,
)

IMAP_PASSWORD = "imap-secret-password"


@pytest.fixture(autouse=True)
def settings(app_config, dovecot):
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{dovecot.port},{dovecot.tls_port}",
        IMAP_CA_FILE=str(dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
    )


def entries(account_id):
    return [(e.action, e.object_type, e.object_label) for e in db.session.scalars(
        select(ActivityEntry).where(ActivityEntry.account_id == account_id)
        .order_by(ActivityEntry.id))]


def only(model, account_id):
    return db.session.scalars(select(model).where(model.account_id == account_id)).one()


def test_each_kind_of_object_is_logged_through_the_admin(logged_in, user, dovecot, imap_user):
    account_id, email = user.account_id, user.email
    c = logged_in

    def ok(response):
        assert response.status_code in (200, 201, 302), response.get_data(as_text=True)[:2000]

    ok(c.post("/sites/new", data={"name": "Shop", "domains": "shop.example"}))
    site = only(Site, account_id)
    ok(c.post(f"/sites/{site.id}/edit", data={"name": "Shop 2", "domains": "shop.example"}))

    ok(c.post("/blocks/new", data={"name": "Contacts", "sites": [site.id], "placement": "code",
                                   "addresses": "info@shop.example"}))
    block = only(Block, account_id)
    ok(c.post(f"/blocks/{block.id}/edit", data={
        "name": "Contacts 2", "sites": [site.id], "placement": "code",
        "addresses": "info@shop.example"}))

    rule = {"name": "Everyone", "active": "y", "blocks": [block.id], "segment": "all",
            "kind": "static", "static_address": "info@shop.example"}
    ok(c.post("/rules/new", data=rule))
    rule_id = only(Rule, account_id).id
    ok(c.post(f"/rules/{rule_id}/edit", data={**rule, "name": "Everyone 2"}))
    ok(c.post(f"/rules/{rule_id}/active", data={"active": "0"}))

    login, password = imap_user
    ok(c.post("/credentials/new", data={
        "name": "Local box", "protocol": "imap", "service": "other", "host": dovecot.host,
        "port": str(dovecot.tls_port), "security": "ssl", "login": login,
        "password": password}))
    credential = only(Credential, account_id)
    ok(c.post(f"/credentials/{credential.id}/edit", data={
        "name": "Local box 2", "protocol": "imap", "service": "other", "host": dovecot.host,
        "port": str(dovecot.tls_port), "security": "ssl", "login": login, "password": ""}))

    mailbox_form = {"active": "y", "credential": str(credential.id), "repeat_value": "1",
                    "repeat_unit": "days", "folders": ["INBOX"]}
    ok(c.post("/mailboxes/new", data=mailbox_form))
    mailbox = only(Mailbox, account_id)
    ok(c.post(f"/mailboxes/{mailbox.id}/edit", data={**mailbox_form, "repeat_value": "2"}))
    ok(c.post(f"/mailboxes/{mailbox.id}/active", data={"active": "0"}))

    ok(c.post("/webhooks/new", data={"url": "http://127.0.0.1:9/hook", "events": "all"}))
    webhook = only(Webhook, account_id)
    ok(c.post(f"/webhooks/{webhook.id}/edit", data={"url": "http://127.0.0.1:9/hook2",
                                                    "events": "all"}))
    ok(c.post(f"/webhooks/{webhook.id}/pause"))

    ok(c.post("/settings/api-tokens/", data={"name": "CRM"}))
    token = only(ApiToken, account_id)
    ok(c.post(f"/settings/api-tokens/{token.id}/revoke"))

    # Deleted in an order the app allows: the mailbox before its credentials.
    for url in (f"/mailboxes/{mailbox.id}/delete", f"/credentials/{credential.id}/delete",
                f"/rules/{rule_id}/delete", f"/blocks/{block.id}/delete",
                f"/sites/{site.id}/delete", f"/webhooks/{webhook.id}/delete"):
        ok(c.post(url))

    db.session.expire_all()
    address = login.lower()
    assert entries(account_id) == [
        ("created", "site", "Shop"), ("changed", "site", "Shop 2"),
        ("created", "block", "Contacts"), ("changed", "block", "Contacts 2"),
        ("created", "rule", "Everyone"), ("changed", "rule", "Everyone 2"),
        ("changed", "rule", "Everyone 2"),
        ("created", "credential", "Local box"), ("changed", "credential", "Local box 2"),
        ("created", "mailbox", address), ("changed", "mailbox", address),
        ("changed", "mailbox", address),
        ("created", "webhook", "http://127.0.0.1:9/hook"),
        ("changed", "webhook", "http://127.0.0.1:9/hook2"),
        ("changed", "webhook", "http://127.0.0.1:9/hook2"),
        ("created", "api_token", "CRM"), ("revoked", "api_token", "CRM"),
        ("deleted", "mailbox", address), ("deleted", "credential", "Local box 2"),
        ("deleted", "rule", "Everyone 2"), ("deleted", "block", "Contacts 2"),
        ("deleted", "site", "Shop 2"), ("deleted", "webhook", "http://127.0.0.1:9/hook2"),
    ]
    rows = db.session.scalars(select(ActivityEntry)).all()
    assert {(r.user_id, r.user_email) for r in rows} == {(user.id, email)}
    assert all(r.object_id for r in rows)

    page = c.get("/settings/activity/").get_data(as_text=True)
    assert page.count('class="activity-entry"') == 20  # PAGE_SIZE, newest first
    rows = re.findall(r'<tr class="activity-entry">(.*?)</tr>', page, re.S)
    assert "deleted" in rows[0] and "http://127.0.0.1:9/hook2" in rows[0]  # the newest
    second = c.get("/settings/activity/?page=2").get_data(as_text=True)
    last = re.findall(r'<tr class="activity-entry">(.*?)</tr>', second, re.S)
    assert len(last) == 3 and "created" in last[-1] and ">Shop<" in last[-1]  # the oldest
    assert IMAP_PASSWORD not in page and password not in page


def test_entries_are_escaped_and_kept_to_their_account(app, factory, client):
    with app.app_context():
        owner = SimpleNamespace(email=factory.user().email)
        stranger = SimpleNamespace(email=factory.user().email)
    client.login(owner)
    client.post("/sites/new", data={"name": "<img src=x onerror=alert(1)>",
                                    "domains": "evil.example"})
    page = client.get("/settings/activity/").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in page

    other = app.test_client()
    other.login(stranger)
    page = other.get("/settings/activity/").get_data(as_text=True)
    assert "onerror" not in page and "Nothing yet." in page


def test_only_owners_see_the_log(app, factory, client):
    with app.app_context():
        owner = factory.user()
        editor = factory.user(account=owner.home_account)
        db.session.scalars(select(Membership).where(Membership.user_id == editor.id)).one() \
            .role = "editor"
        db.session.commit()
        owner, editor = SimpleNamespace(email=owner.email), SimpleNamespace(email=editor.email)
    client.login(editor)
    assert client.get("/settings/activity/").status_code == 403
    # An editor's changes are logged all the same, for the owners.
    assert client.post("/sites/new", data={"name": "By the editor",
                                           "domains": "ed.example"}).status_code == 302
    owner_client = app.test_client()
    owner_client.login(owner)
    page = owner_client.get("/settings/activity/").get_data(as_text=True)
    assert "By the editor" in page and editor.email in page
    assert client.get("/settings/activity/").status_code == 403
    anonymous = app.test_client().get("/settings/activity/")
    assert anonymous.status_code == 302 and "/login" in anonymous.location


def test_the_log_in_russian(app, factory, client):
    with app.app_context():
        owner = SimpleNamespace(email=factory.user(locale="ru").email)
    client.login(owner)
    client.post("/sites/new", data={"name": "Магазин", "domains": "shop.example"})
    page = client.get("/settings/activity/").get_data(as_text=True)
    assert "Журнал действий" in page
    row = re.search(r'<tr class="activity-entry">(.*?)</tr>', page, re.S).group(1)
    assert "создано" in row and "Сайт" in row and "Магазин" in row
