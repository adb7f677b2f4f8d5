"""Credentials: presets, validation, encrypted passwords, key rotation, uniqueness, isolation."""

import json
import logging
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from tests.conftest import Client
from tracker import create_app, crypto, imap
from tracker.extensions import db
from tracker.forms.mailboxes import CredentialForm
from tracker.models import Credential

PASSWORD = "s3cret-app-password-42"


@pytest.fixture(autouse=True)
def imap_settings(app_config, dovecot):
    """The local Dovecot is on loopback, on its own ports, with a test CA."""
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{dovecot.port},{dovecot.tls_port}",
        IMAP_CA_FILE=str(dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
    )


def credentials_of(account_id):
    return db.session.scalars(select(Credential).where(Credential.account_id == account_id)).all()


def other_form(dovecot, login, password, **overrides):
    data = {"name": "Local", "protocol": "imap", "service": "other", "host": dovecot.host,
            "port": str(dovecot.tls_port), "security": "ssl", "login": login,
            "password": password}
    data.update(overrides)
    return data


def test_list_requires_login(client):
    response = client.get("/credentials/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_create_with_a_preset_uses_its_server(logged_in, user):
    response = logged_in.post("/credentials/new", data={
        "name": " Sales ", "protocol": "imap", "service": "gmail", "host": "evil.example",
        "port": "25", "security": "starttls", "login": " Sales@Example.COM ", "password": PASSWORD,
    })
    assert response.status_code == 302
    [credential] = credentials_of(user.account_id)
    assert (credential.name, credential.service, credential.host, credential.port,
            credential.security, credential.login) == (
        "Sales", "gmail", "imap.gmail.com", 993, "ssl", "sales@example.com")
    assert credential.password_token != PASSWORD and credential.password == PASSWORD
    page = logged_in.get("/credentials/").get_data(as_text=True)
    assert "sales@example.com" in page and "imap.gmail.com:993" in page and "Gmail" in page


def test_every_preset_fills_host_port_and_security(logged_in, user):
    expected = {
        "yandex": "imap.yandex.ru", "gmail": "imap.gmail.com", "mailru": "imap.mail.ru",
        "outlook": "outlook.office365.com", "yahoo": "imap.mail.yahoo.com",
        "icloud": "imap.mail.me.com", "rambler": "imap.rambler.ru", "zoho": "imap.zoho.com",
    }
    for n, service in enumerate(expected):
        response = logged_in.post("/credentials/new", data={
            "name": service, "service": service, "login": f"u{n}@example.com", "password": "x"})
        assert response.status_code == 302, service
    stored = {c.service: (c.host, c.port, c.security) for c in credentials_of(user.account_id)}
    assert stored == {k: (v, 993, "ssl") for k, v in expected.items()}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("IMAP.Example.COM.", "imap.example.com"), ("почта.рф", "xn--80a1acny.xn--p1ai"),
     ("[2001:db8::1]", "2001:db8::1"), (" 192.0.2.7 ", "192.0.2.7")],
)
def test_other_service_normalises_the_host(logged_in, user, dovecot, typed, stored):
    response = logged_in.post("/credentials/new", data=other_form(
        dovecot, "me@example.com", PASSWORD, host=typed, port="143", security="starttls"))
    assert response.status_code == 302
    [credential] = credentials_of(user.account_id)
    assert (credential.host, credential.port, credential.security) == (stored, 143, "starttls")


GOOD = {"name": "Box", "protocol": "imap", "service": "other", "host": "imap.example.com",
        "port": "993", "security": "ssl", "login": "box@example.com", "password": "pw"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Give the credentials a name."),
        ({"name": "x" * 201}, "Keep the name under 200 characters."),
        ({"protocol": "pop3"}, "Only IMAP is supported."),
        ({"service": "aol"}, "Choose a mail service from the list."),
        ({"host": ""}, "Enter the IMAP server, e.g. imap.example.com."),
        ({"host": "not a host!"}, "Not a server name or IP address."),
        ({"host": "imap.example.com:993"}, "Not a server name or IP address."),
        ({"host": "http://x/"}, "Not a server name or IP address."),
        ({"host": "a" * 254}, "Too long."),
        ({"port": ""}, "Enter a port number from 1 to 65535, usually 993."),
        ({"port": "abc"}, "Enter a port number from 1 to 65535, usually 993."),
        ({"port": "0"}, "Enter a port number from 1 to 65535, usually 993."),
        ({"port": "70000"}, "Enter a port number from 1 to 65535, usually 993."),
        ({"port": "-1"}, "Enter a port number from 1 to 65535, usually 993."),
        ({"port": "25"}, "Port 25 is not allowed here; use one of: 143, "),
        ({"security": "none"}, "Choose SSL/TLS or STARTTLS."),
        ({"login": ""}, "Enter the login, usually the mailbox's email address."),
        ({"login": "   "}, "Enter the login, usually the mailbox's email address."),
        ({"login": "ivan\npetrov"}, "The login cannot contain line breaks"),
        ({"login": "ivan\x00"}, "The login cannot contain line breaks"),
        ({"login": "x" * 310 + "@example.com"}, "Too long."),
        ({"password": ""}, "Enter the password (an app password where the service asks for one)."),
        ({"password": "a\nb"}, "The password cannot contain line breaks"),
        ({"password": "p" * 1001}, "Too long."),
    ],
)
def test_bad_input_is_an_inline_message(logged_in, user, changes, message):
    response = logged_in.post("/credentials/new", data=dict(GOOD, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert credentials_of(user.account_id) == []


def test_empty_post_is_an_inline_message(logged_in, user):
    response = logged_in.post("/credentials/new", data={})
    assert response.status_code == 422
    assert "Give the credentials a name." in response.get_data(as_text=True)


def test_password_is_never_rendered_back(logged_in, user, factory):
    credential = factory.credential(user.account, password=PASSWORD)
    for url in ("/credentials/", f"/credentials/{credential.id}/edit",
                f"/credentials/{credential.id}/delete"):
        body = logged_in.get(url).get_data(as_text=True)
        assert PASSWORD not in body and credential.password_token not in body, url
    # What the user just typed comes back in the password field for the retry, and only there.
    bad = logged_in.post("/credentials/new", data=dict(GOOD, name="", password=PASSWORD))
    body = bad.get_data(as_text=True)
    assert body.count(PASSWORD) == 1 and f'type="password" value="{PASSWORD}"' in body


def test_password_is_absent_from_the_raw_database_file(logged_in, user, app, backend, request):
    logged_in.post("/credentials/new", data=dict(GOOD, password=PASSWORD))
    assert len(credentials_of(user.account_id)) == 1
    db.session.remove()
    db.engine.dispose()
    if backend == "postgresql":  # the database's files and the WAL
        raw = request.getfixturevalue("postgres").raw_bytes(db.engine.url.database)
    else:
        path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
        raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if Path(p).exists())
    assert b"box@example.com" in raw
    assert PASSWORD.encode() not in raw


def test_edit_keeps_the_stored_password_when_left_empty(logged_in, user, factory):
    credential = factory.credential(user.account, password=PASSWORD, name="Old")
    token = credential.password_token
    body = logged_in.get(f"/credentials/{credential.id}/edit").get_data(as_text=True)
    assert 'value="Old"' in body and "Leave empty to keep the stored password." in body
    data = dict(GOOD, name="New", login=credential.login, password="")
    assert logged_in.post(f"/credentials/{credential.id}/edit", data=data).status_code == 302
    db.session.expire_all()
    credential = db.session.get(Credential, credential.id)
    assert credential.name == "New" and credential.password_token == token
    data["password"] = "replaced"
    assert logged_in.post(f"/credentials/{credential.id}/edit", data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(Credential, credential.id).password == "replaced"


def test_same_mailbox_in_another_account_is_refused(logged_in, user, factory):
    factory.credential(factory.account(), login="shared@example.com", host="imap.example.com")
    response = logged_in.post("/credentials/new", data=dict(GOOD, login="Shared@Example.com"))
    assert response.status_code == 422
    assert ("The mailbox shared@example.com on imap.example.com is already connected in another "
            "account. One mailbox can be connected only once.") in response.get_data(as_text=True)
    assert credentials_of(user.account_id) == []
    # Same login on another server is another mailbox.
    response = logged_in.post("/credentials/new", data=dict(GOOD, host="imap.other.example",
                                                            login="shared@example.com"))
    assert response.status_code == 302


def test_same_mailbox_twice_in_one_account_names_the_first(logged_in, user, factory):
    factory.credential(user.account, login="mine@example.com", name="First")
    response = logged_in.post("/credentials/new", data=dict(GOOD, login="mine@example.com"))
    assert response.status_code == 422
    assert ("You already have credentials for mine@example.com on imap.example.com: “First”."
            in response.get_data(as_text=True))


def test_two_concurrent_saves_of_the_same_mailbox(app, factory, monkeypatch):
    """Both pass the form's check before either commits: the unique constraint decides."""
    clients = []
    for _ in range(2):
        client = app.test_client()
        client.login(factory.user())
        clients.append(client)
    both_checked = threading.Barrier(2, timeout=10)
    original = CredentialForm._check_unique

    def check_then_wait(form):
        ok = original(form)
        both_checked.wait()
        return ok

    monkeypatch.setattr(CredentialForm, "_check_unique", check_then_wait)
    responses = [None, None]

    def save(i):
        responses[i] = clients[i].post("/credentials/new", data=dict(GOOD, login="race@example.com"))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.status_code for r in responses) == [302, 422]
    loser = next(r for r in responses if r.status_code == 422)
    assert "is already connected in another account" in loser.get_data(as_text=True)
    db.session.expire_all()
    assert len(db.session.scalars(select(Credential)).all()) == 1


def test_delete_unused_credentials(logged_in, user, factory):
    credential = factory.credential(user.account, name="Spare")
    page = logged_in.get(f"/credentials/{credential.id}/delete").get_data(as_text=True)
    assert "Delete credentials “Spare”?" in page
    assert logged_in.post(f"/credentials/{credential.id}/delete").status_code == 302
    assert credentials_of(user.account_id) == []


def test_credentials_in_use_are_not_deleted(logged_in, user, factory):
    mailbox = factory.mailbox(user.account)
    credential_id = mailbox.credential_id
    page = logged_in.get(f"/credentials/{credential_id}/delete").get_data(as_text=True)
    assert "Delete the mailbox first" in page
    response = logged_in.post(f"/credentials/{credential_id}/delete")
    assert response.status_code == 409
    db.session.expire_all()
    assert db.session.get(Credential, credential_id) is not None


def test_test_connection_from_the_form(logged_in, dovecot, imap_user):
    login, password = imap_user
    hx = {"HX-Request": "true"}
    ok = logged_in.post("/credentials/new", data=dict(other_form(dovecot, login, password),
                                                      do="check"), headers=hx)
    body = ok.get_data(as_text=True)
    assert ok.status_code == 200 and "Integration works." in body and "<form" not in body
    bad = logged_in.post("/credentials/new", data=dict(other_form(dovecot, login, "wrong"),
                                                       do="check"), headers=hx)
    assert "Wrong login or password" in bad.get_data(as_text=True)
    invalid = logged_in.post("/credentials/new", data={"do": "check", "name": ""}, headers=hx)
    assert invalid.status_code == 422
    assert invalid.headers["HX-Retarget"] == "#credential-form"
    assert invalid.get_data(as_text=True).lstrip().startswith("<form")
    # Without JS the whole page comes back with the result.
    page = logged_in.post("/credentials/new", data=dict(other_form(dovecot, login, password),
                                                        do="check"))
    assert "<html" in page.get_data(as_text=True) and "Integration works." in page.get_data(as_text=True)
    assert db.session.scalars(select(Credential)).all() == []


def test_test_connection_on_edit_uses_the_stored_password(logged_in, user, factory, dovecot,
                                                         imap_user):
    login, password = imap_user
    credential = factory.credential(user.account, login=login, password=password,
                                    host=dovecot.host, port=dovecot.tls_port)
    response = logged_in.post(f"/credentials/{credential.id}/edit",
                              data=dict(other_form(dovecot, login, ""), do="check"),
                              headers={"HX-Request": "true"})
    assert "Integration works." in response.get_data(as_text=True)


def test_test_connection_says_when_the_inbox_is_connected_already(logged_in, user, factory,
                                                                  dovecot, imap_user):
    login, password = imap_user
    other_name = "localhost" if dovecot.host == "127.0.0.1" else "127.0.0.1"
    hx = {"HX-Request": "true"}
    first = factory.mailbox(user.account, factory.credential(
        user.account, login=login, password=password, host=dovecot.host, port=dovecot.tls_port))
    response = logged_in.post("/credentials/new", data=dict(
        other_form(dovecot, login, password, host=other_name), do="check"), headers=hx)
    body = response.get_data(as_text=True)
    assert "Integration works." in body
    assert (f"This inbox is already connected as your mailbox {login}: a second mailbox with "
            "these credentials would read the same emails and will not be saved." in body)
    # Its own credentials, tested on their edit page, are no second mailbox.
    credential_id = first.credential_id
    own = logged_in.post(f"/credentials/{credential_id}/edit", data=dict(
        other_form(dovecot, login, ""), do="check"), headers=hx)
    assert "already connected" not in own.get_data(as_text=True)
    # In another account: no word about that account.
    stranger = factory.account()
    db.session.delete(first)
    db.session.commit()
    factory.mailbox(stranger, factory.credential(stranger, login=login, password=password,
                                                 host=other_name, port=dovecot.tls_port,
                                                 name="Their secret name"))
    theirs = logged_in.post(f"/credentials/{credential_id}/edit", data=dict(
        other_form(dovecot, login, ""), do="check"), headers=hx)
    body = theirs.get_data(as_text=True)
    assert ("This inbox is already connected in another account: a mailbox with these "
            "credentials will not be saved." in body)
    assert "Their secret name" not in body and other_name not in body
    russian = logged_in.post(f"/credentials/{credential_id}/edit", data=dict(
        other_form(dovecot, login, ""), do="check"), headers=dict(hx, **{
            "Accept-Language": "ru"})).get_data(as_text=True)
    assert "Этот ящик уже подключён в другом аккаунте" in russian


def test_password_stays_out_of_the_logs(logged_in, dovecot, imap_user, caplog):
    login, password = imap_user
    caplog.set_level(logging.DEBUG)
    logged_in.post("/credentials/new", data=dict(other_form(dovecot, login, password), do="check"))
    assert "LOGIN" in caplog.text  # the IMAP conversation was logged...
    assert password not in caplog.text  # ...without the password


def test_server_fields_follow_the_service(logged_in):
    hx = {"HX-Request": "true"}
    gmail = logged_in.get("/credentials/server-fields?service=gmail", headers=hx)
    body = gmail.get_data(as_text=True)
    assert "<html" not in body and "data-preset" in body and "imap.gmail.com:993" in body
    assert "2-Step Verification" in body
    other = logged_in.get("/credentials/server-fields?service=other&host=mail.example&port=143",
                          headers=hx).get_data(as_text=True)
    assert "data-preset" not in other and 'value="mail.example"' in other
    outlook = logged_in.get("/credentials/server-fields?service=outlook", headers=hx)
    assert "September 2024" in outlook.get_data(as_text=True)


def test_new_page_shows_all_server_fields_without_js(logged_in):
    body = logged_in.get("/credentials/new").get_data(as_text=True)
    for name in ("host", "port", "security", "login", "password"):
        assert f'name="{name}"' in body
    assert "Yandex" in body and "Other service" in body


def test_inline_creation_answers_the_dialog(logged_in, user):
    response = logged_in.post("/credentials/new?inline=1", data=GOOD, headers={"HX-Request": "true"})
    assert response.status_code == 200
    [credential] = credentials_of(user.account_id)
    event = json.loads(response.headers["HX-Trigger"])["credential-created"]
    assert event == {"id": str(credential.id), "label": "Box — box@example.com"}


def test_next_returns_to_the_mailbox_form_with_the_new_credentials(logged_in, user):
    response = logged_in.post("/credentials/new?next=/mailboxes/new", data=GOOD)
    [credential] = credentials_of(user.account_id)
    assert response.headers["Location"] == f"/mailboxes/new?credential_id={credential.id}"
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<option selected value="{credential.id}">' in page
    offsite = logged_in.post("/credentials/new?next=//evil.example/",
                             data=dict(GOOD, login="two@example.com"))
    assert offsite.headers["Location"] == "/credentials/"


def test_hostile_text_is_escaped(logged_in, user):
    logged_in.post("/credentials/new", data=dict(GOOD, name="<script>alert(1)</script>"))
    body = logged_in.get("/credentials/").get_data(as_text=True)
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body


def test_search(logged_in, user, factory):
    factory.credential(user.account, name="Alpha", login="alpha@example.com")
    factory.credential(user.account, name="Beta", login="beta@example.com")
    body = logged_in.get("/credentials/?q=BETA@").get_data(as_text=True)
    assert "beta@example.com" in body and "alpha@example.com" not in body
    assert "No credentials match “zzz”." in logged_in.get("/credentials/?q=zzz").get_data(as_text=True)


def test_list_shows_only_own_credentials(logged_in, user, factory):
    factory.credential(user.account, login="mine@example.com")
    factory.credential(factory.account(), login="theirs@example.com")
    body = logged_in.get("/credentials/").get_data(as_text=True)
    assert "mine@example.com" in body and "theirs@example.com" not in body


ROUTES = [
    ("GET", "/credentials/{id}/edit"),
    ("POST", "/credentials/{id}/edit"),
    ("GET", "/credentials/{id}/delete"),
    ("POST", "/credentials/{id}/delete"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_another_accounts_credentials_answer_404(logged_in, factory, method, route):
    foreign = factory.credential(factory.account(), name="Foreign", login="foreign@example.com")
    token = foreign.password_token
    response = logged_in.open(route.format(id=foreign.id), method=method,
                              data=dict(GOOD, name="Hijacked", do="check"))
    assert response.status_code == 404
    response = logged_in.open(route.format(id=foreign.id), method=method,
                              data=dict(GOOD, name="Hijacked"))
    assert response.status_code == 404
    db.session.expire_all()
    after = db.session.get(Credential, foreign.id)
    assert (after.name, after.password_token, after.login) == (
        "Foreign", token, "foreign@example.com")


# ---------------------------------------------------------------- key rotation

def make_app(app_config, keys):
    app = create_app(dict(app_config, FERNET_KEYS=",".join(keys)))
    app.test_client_class = Client
    return app


def run_command(app, *args):
    """Run a flask command in app (its own context, not the test's app)."""
    with app.app_context():
        result = app.test_cli_runner().invoke(args=list(args))
        db.session.remove()
        db.engine.dispose()
    return result


def test_rotate_keys_then_drop_the_old_key(app_config, factory, dovecot, imap_user):
    login, password = imap_user
    old, new = app_config["FERNET_KEYS"], Fernet.generate_key().decode()
    credential = factory.credential(factory.account(), login=login, password=password,
                                    host=dovecot.host, port=dovecot.tls_port)
    credential_id, old_token = credential.id, credential.password_token

    both = make_app(app_config, [new, old])
    result = run_command(both, "credentials", "rotate-keys")
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 stored password(s) under the newest key." in result.output

    only_new = make_app(app_config, [new])
    with only_new.app_context():
        credential = db.session.get(Credential, credential_id)
        assert credential.password_token != old_token
        assert crypto.decrypt(credential.password_token, [new]) == password
        check = imap.check_connection(credential.server_params(), **imap.options(only_new.config))
        assert check.ok, check.message
        db.session.remove()
        db.engine.dispose()


def test_rotate_keys_changes_nothing_when_a_password_is_unreadable(app_config, factory):
    credential = factory.credential(factory.account())
    token = credential.password_token
    stranger = make_app(app_config, [Fernet.generate_key().decode()])
    result = run_command(stranger, "credentials", "rotate-keys")
    assert result.exit_code != 0
    assert f"decrypts the password of credentials {credential.id}; nothing was changed" in result.output
    db.session.expire_all()
    assert db.session.get(Credential, credential.id).password_token == token


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (" Sales@Example.COM ", "sales@example.com"),
        ("ivan", "ivan"),
        ("Ivan.Petrov", "Ivan.Petrov"),
        ("CORP\\Ivan", "CORP\\Ivan"),
        ("Ivan@Corp.Local", "ivan@corp.local"),
        ("ivan@mailhost", "ivan@mailhost"),
        ("  ivan  ", "ivan"),
    ],
)
def test_login_is_any_real_imap_login(logged_in, user, typed, stored):
    response = logged_in.post("/credentials/new", data=dict(GOOD, login=typed))
    assert response.status_code == 302, response.get_data(as_text=True)
    [credential] = credentials_of(user.account_id)
    assert credential.login == stored


def test_user_name_login_is_unique_per_server_whatever_its_case(logged_in, user, factory):
    factory.credential(factory.account(), login="Ivan", host="imap.example.com")
    response = logged_in.post("/credentials/new", data=dict(GOOD, login="ivan"))
    assert response.status_code == 422
    assert "One mailbox can be connected only once." in response.get_data(as_text=True)


def test_typed_password_is_kept_after_a_form_error(logged_in, user):
    response = logged_in.post("/credentials/new", data=dict(GOOD, name="", password="typed-pw"))
    assert response.status_code == 422
    assert 'value="typed-pw"' in response.get_data(as_text=True)


def test_stored_password_is_never_rendered(logged_in, user, factory):
    credential = factory.credential(user.account, password=PASSWORD, name="Old")
    page = logged_in.get(f"/credentials/{credential.id}/edit").get_data(as_text=True)
    assert PASSWORD not in page
    assert 'name="password" type="password" value=""' in page
    # An error on the edit form shows what was typed (here nothing: keep the stored one).
    data = dict(GOOD, name="", login=credential.login, password="")
    invalid = logged_in.post(f"/credentials/{credential.id}/edit", data=data)
    assert invalid.status_code == 422
    assert PASSWORD not in invalid.get_data(as_text=True)
