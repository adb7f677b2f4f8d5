"""Mailboxes: add and edit with a connection check, the switch, folders, delete, isolation."""

import threading

import pytest
from sqlalchemy import select

from tests.test_i18n import english_leftovers
from tracker import imap
from tracker.extensions import db
from tracker.forms.mailboxes import MailboxForm
from tracker.models import Credential, Mailbox, MailboxFolder


@pytest.fixture(autouse=True)
def imap_settings(app_config, dovecot):
    """The local Dovecot is on loopback, on its own ports, with a test CA."""
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{dovecot.port},{dovecot.tls_port}",
        IMAP_CA_FILE=str(dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
    )


@pytest.fixture
def local_credential(factory, user, dovecot, imap_user):
    """Credentials of the user's account for a real mailbox on the local Dovecot."""
    login, password = imap_user
    return factory.credential(user.account, login=login, password=password, host=dovecot.host,
                              port=dovecot.tls_port, name="Local box")


def mailboxes_of(account_id):
    return db.session.scalars(select(Mailbox).where(Mailbox.account_id == account_id)).all()


def form_data(cred, **changes):
    data = {"active": "y", "credential": str(cred.id), "repeat_value": "1",
            "repeat_unit": "days", "folders": ["INBOX"]}
    data.update(changes)
    return data


def test_list_requires_login(client):
    response = client.get("/mailboxes/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_navigation_has_mailboxes_then_credentials(logged_in):
    body = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert body.index('href="/mailboxes/"') < body.index('href="/credentials/"')


def test_add_a_mailbox_checks_the_connection(logged_in, user, local_credential):
    response = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, repeat_value="12", repeat_unit="hours"))
    assert response.status_code == 302 and response.headers["Location"] == "/mailboxes/"
    [mailbox] = mailboxes_of(user.account_id)
    assert mailbox.credential_id == local_credential.id and mailbox.active
    assert (mailbox.repeat_period_seconds, mailbox.repeat_period_unit) == (43200, "hours")
    assert mailbox.folder_names == ["INBOX"]
    assert mailbox.status == "ok" and mailbox.checked_at is not None
    page = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert (f"Mailbox {local_credential.login} saved. Integration works: 1 folder found "
            "(INBOX)." in page)
    assert local_credential.login in page and "12 hours" in page and "never" in page
    assert "Integration works." in page


def test_saving_says_how_many_folders_were_found(logged_in, user, dovecot, local_credential):
    dovecot.create_folder(local_credential.login, "Spam")
    response = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, folders=["INBOX", "Spam"]), follow_redirects=True)
    assert (f"Mailbox {local_credential.login} saved. Integration works: 2 folders found "
            "(INBOX, Spam)." in response.get_data(as_text=True))


def test_a_failed_check_keeps_the_mailbox_and_says_why(logged_in, user, factory, dovecot,
                                                       imap_user):
    login, _password = imap_user
    credential = factory.credential(user.account, login=login, password="wrong",
                                    host=dovecot.host, port=dovecot.tls_port)
    # A failed check saves nothing: the form comes back with the reason and "Save anyway".
    refused = logged_in.post("/mailboxes/new", data=form_data(credential))
    assert refused.status_code == 422 and mailboxes_of(user.account_id) == []
    body = refused.get_data(as_text=True)
    assert "Not saved: the connection check failed. Wrong login or password" in body
    assert 'name="save_anyway"' in body and "Save anyway" in body
    # With htmx the whole form is replaced, so the box appears next to the Save button.
    hx = logged_in.post("/mailboxes/new", data=form_data(credential),
                        headers={"HX-Request": "true"})
    assert hx.status_code == 422 and hx.headers["HX-Retarget"] == "#mailbox-form"
    assert 'name="save_anyway"' in hx.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == []
    # Ticked, the mailbox is saved with its failed status.
    response = logged_in.post("/mailboxes/new", data=form_data(credential, save_anyway="y"))
    [mailbox] = mailboxes_of(user.account_id)
    assert response.headers["Location"] == f"/mailboxes/{mailbox.id}/edit"
    assert mailbox.status == "auth_failed"
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "saved, but the connection check failed: Wrong login or password" in page
    listing = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert "Wrong login or password: the server did not accept them." in listing


def test_defaults_of_a_new_mailbox(logged_in, local_credential):
    body = logged_in.get("/mailboxes/new").get_data(as_text=True)
    assert 'name="repeat_value" type="text" value="1"' in body
    assert '<option selected value="days">' in body
    assert 'value="INBOX" checked' in body
    assert '<input checked id="active" name="active" role="switch" type="checkbox" value="y">' in body


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [("0", "days", 0), ("365", "days", 365 * 86400), ("8760", "hours", 8760 * 3600),
     ("3", "hours", 3 * 3600)],
)
def test_repeat_period_limits(logged_in, user, local_credential, value, unit, seconds):
    response = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, repeat_value=value, repeat_unit=unit))
    assert response.status_code == 302
    [mailbox] = mailboxes_of(user.account_id)
    assert mailbox.repeat_period_seconds == seconds


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"credential": ""}, "Choose the credentials of the mailbox, or add new ones."),
        ({"credential": "abc"}, "Choose the credentials of the mailbox, or add new ones."),
        ({"credential": "999999"}, "Choose the credentials of the mailbox, or add new ones."),
        ({"repeat_value": ""}, "Enter a whole number: 0 or more."),
        ({"repeat_value": "-1"}, "Enter a whole number: 0 or more."),
        ({"repeat_value": "1.5"}, "Enter a whole number: 0 or more."),
        ({"repeat_value": "day"}, "Enter a whole number: 0 or more."),
        ({"repeat_value": "366"}, "The repeat period can be at most 365 days."),
        ({"repeat_value": "8761", "repeat_unit": "hours"},
         "The repeat period can be at most 365 days."),
        ({"repeat_value": "9" * 400}, "The repeat period can be at most 365 days."),
        ({"repeat_unit": "weeks"}, "Choose hours or days."),
        ({"folders": []}, "Choose at least one folder, e.g. INBOX."),
        ({"folders": [""]}, "Not a folder name"),
        ({"folders": ["x" * 501]}, "Not a folder name"),
        ({"folders": ["In\nbox"]}, "Not a folder name"),
        ({"folders": [f"F{i}" for i in range(21)]}, "Choose at most 20 folders."),
    ],
)
def test_bad_input_is_an_inline_message(logged_in, user, factory, changes, message):
    credential = factory.credential(user.account)
    response = logged_in.post("/mailboxes/new", data=form_data(credential, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == []


def test_empty_post_is_an_inline_message(logged_in, user):
    response = logged_in.post("/mailboxes/new", data={})
    assert response.status_code == 422
    assert "Choose the credentials" in response.get_data(as_text=True)


def test_another_accounts_credentials_cannot_be_chosen(logged_in, user, factory):
    foreign = factory.credential(factory.account(), login="foreign@example.com")
    body = logged_in.get("/mailboxes/new").get_data(as_text=True)
    assert "foreign@example.com" not in body
    response = logged_in.post("/mailboxes/new", data=form_data(foreign))
    assert response.status_code == 422
    assert "Choose the credentials of the mailbox" in response.get_data(as_text=True)
    for do in ("check", "folders"):
        response = logged_in.post("/mailboxes/new", data=form_data(foreign, do=do))
        assert response.status_code == 422
    assert db.session.scalars(select(Mailbox)).all() == []


def test_credentials_already_used_by_another_mailbox(logged_in, user, factory):
    taken = factory.mailbox(user.account).credential
    page = logged_in.get("/mailboxes/new").get_data(as_text=True)
    assert f'<option disabled value="{taken.id}">' in page
    response = logged_in.post("/mailboxes/new", data=form_data(taken))
    assert response.status_code == 422
    assert (f"These credentials are already used by the mailbox {taken.login}."
            in response.get_data(as_text=True))
    assert len(mailboxes_of(user.account_id)) == 1


def test_two_concurrent_saves_with_the_same_credentials(app, user, factory, monkeypatch):
    credential = factory.credential(user.account)
    clients = []
    for _ in range(2):
        client = app.test_client()
        client.login(user)
        clients.append(client)
    both_checked = threading.Barrier(2, timeout=10)
    original = MailboxForm.validate_credential

    def validate_then_wait(form, field):
        original(form, field)
        both_checked.wait()

    monkeypatch.setattr(MailboxForm, "validate_credential", validate_then_wait)
    responses = [None, None]
    data = form_data(credential, save_anyway="y")  # its server is not reachable

    def save(i):
        responses[i] = clients[i].post("/mailboxes/new", data=data)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.status_code for r in responses) == [302, 422]
    loser = next(r for r in responses if r.status_code == 422)
    assert "These credentials are already used by another mailbox." in loser.get_data(as_text=True)
    db.session.expire_all()
    assert len(mailboxes_of(user.account_id)) == 1


def test_edit_is_prefilled_and_keeps_rows_of_kept_folders(logged_in, user, factory, dovecot,
                                                          local_credential):
    dovecot.create_folder(local_credential.login, "Spam")
    mailbox = factory.mailbox(user.account, local_credential, folders=["INBOX", "Old"],
                              repeat_period_seconds=2 * 86400, repeat_period_unit="days")
    inbox_id = mailbox.folders[0].id
    body = logged_in.get(f"/mailboxes/{mailbox.id}/edit").get_data(as_text=True)
    assert 'value="2"' in body and 'value="Old" checked' in body
    assert "Never synced" in body and body.count("Test connection") == 1
    response = logged_in.post(f"/mailboxes/{mailbox.id}/edit", data=form_data(
        local_credential, folders=["INBOX", "Spam"], active=""))
    assert response.status_code == 302
    db.session.expire_all()
    mailbox = db.session.get(Mailbox, mailbox.id)
    assert mailbox.folder_names == ["INBOX", "Spam"] and not mailbox.active
    assert mailbox.folders[0].id == inbox_id
    assert mailbox.status == "ok"
    assert len(db.session.scalars(select(MailboxFolder)).all()) == 2


def test_missing_folder_is_the_status(logged_in, user, local_credential):
    refused = logged_in.post("/mailboxes/new", data=form_data(local_credential,
                                                              folders=["INBOX", "Nope"]))
    assert refused.status_code == 422 and mailboxes_of(user.account_id) == []
    assert "there is no folder “Nope”" in refused.get_data(as_text=True)
    logged_in.post("/mailboxes/new", data=form_data(local_credential, folders=["INBOX", "Nope"],
                                                    save_anyway="y"))
    [mailbox] = mailboxes_of(user.account_id)
    assert mailbox.status == "folder_missing"
    assert mailbox.status_message == "Folder missing: there is no folder “Nope” in this mailbox."


def test_test_connection_button(logged_in, user, local_credential):
    hx = {"HX-Request": "true"}
    response = logged_in.post("/mailboxes/new", data=form_data(local_credential, do="check"),
                              headers=hx)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Integration works." in body and "<form" not in body
    missing = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, do="check", folders=["Nope"]), headers=hx)
    assert "Folder missing" in missing.get_data(as_text=True)
    invalid = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, do="check", repeat_value="x"), headers=hx)
    assert invalid.status_code == 422 and invalid.headers["HX-Retarget"] == "#mailbox-form"
    page = logged_in.post("/mailboxes/new", data=form_data(local_credential, do="check"))
    assert "<html" in page.get_data(as_text=True)
    assert "Integration works." in page.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == []


def test_load_folders_from_the_server(logged_in, user, dovecot, local_credential):
    dovecot.create_folder(local_credential.login, "Spam")
    response = logged_in.post("/mailboxes/new", data=form_data(local_credential, do="folders"),
                              headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<form" not in body
    assert 'value="Spam"' in body and 'value="INBOX" checked' in body
    assert "Folders loaded from the server." in body
    # Without JS: the whole form, with the new choices.
    page = logged_in.post("/mailboxes/new", data=form_data(local_credential, do="folders"))
    assert "<html" in page.get_data(as_text=True) and 'value="Spam"' in page.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == []


def test_load_folders_with_a_wrong_password_says_so(logged_in, user, factory, dovecot, imap_user):
    credential = factory.credential(user.account, login=imap_user[0], password="wrong",
                                    host=dovecot.host, port=dovecot.tls_port)
    response = logged_in.post("/mailboxes/new", data=form_data(credential, do="folders"),
                              headers={"HX-Request": "true"})
    assert "Wrong login or password" in response.get_data(as_text=True)


def test_toggle_active_in_place_and_without_js(logged_in, user, factory):
    mailbox = factory.mailbox(user.account)
    response = logged_in.post(f"/mailboxes/{mailbox.id}/active", data={"active": "0"},
                              headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith("<form")
    assert 'aria-checked="false"' in body and 'value="1"' in body
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).active is False
    # The same request again changes nothing (the form says the state it wants).
    logged_in.post(f"/mailboxes/{mailbox.id}/active", data={"active": "0"})
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).active is False
    response = logged_in.post(f"/mailboxes/{mailbox.id}/active", data={"active": "1"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).active is True
    assert logged_in.post(f"/mailboxes/{mailbox.id}/active", data={"active": "maybe"}).status_code == 400


def test_check_on_demand_records_the_status(logged_in, user, factory, local_credential):
    mailbox = factory.mailbox(user.account, local_credential)
    assert "Never synced" in logged_in.get("/mailboxes/").get_data(as_text=True)
    response = logged_in.post(f"/mailboxes/{mailbox.id}/check", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith("<form") and "Integration works." in body
    db.session.expire_all()
    assert db.session.get(Mailbox, mailbox.id).status == "ok"
    plain = logged_in.post(f"/mailboxes/{mailbox.id}/check")
    assert plain.status_code == 302
    assert "Integration works." in logged_in.get("/mailboxes/").get_data(as_text=True)


def test_delete_says_how_many_emails_go(logged_in, user, factory):
    mailbox = factory.mailbox(user.account, folders=["INBOX", "Spam"])
    credential_id = mailbox.credential_id
    page = logged_in.get(f"/mailboxes/{mailbox.id}/delete").get_data(as_text=True)
    assert f"Delete mailbox {mailbox.address}?" in page
    assert "Its 0 stored emails are deleted with it." in page
    assert logged_in.post(f"/mailboxes/{mailbox.id}/delete").status_code == 302
    assert mailboxes_of(user.account_id) == []
    assert db.session.scalars(select(MailboxFolder)).all() == []
    assert db.session.get(Credential, credential_id) is not None


def test_hostile_text_is_escaped(logged_in, user, factory):
    credential = factory.credential(user.account, name="<img src=x onerror=alert(1)>")
    factory.mailbox(user.account, credential, folders=["<b>bold</b>"])
    pages = [logged_in.get("/mailboxes/new"), logged_in.get("/mailboxes/"),
             logged_in.get(f"/mailboxes/{credential.mailbox.id}/edit")]
    for response in pages:
        body = response.get_data(as_text=True)
        assert "<img src=x" not in body and "<b>bold" not in body


def test_search(logged_in, user, factory):
    factory.mailbox(user.account, factory.credential(user.account, login="sales@example.com"))
    factory.mailbox(user.account, factory.credential(user.account, login="support@example.com"))
    body = logged_in.get("/mailboxes/?q=SALES").get_data(as_text=True)
    assert "sales@example.com" in body and "support@example.com" not in body
    assert "No mailboxes match “zzz”." in logged_in.get("/mailboxes/?q=zzz").get_data(as_text=True)
    fragment = logged_in.get("/mailboxes/?q=sup", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "support@example.com" in fragment


def test_list_shows_only_own_mailboxes(logged_in, user, factory):
    factory.mailbox(user.account, factory.credential(user.account, login="mine@example.com"))
    factory.mailbox(factory.account())
    body = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert "mine@example.com" in body and body.count('<tr id="mailbox-') == 1


def other_name(dovecot):
    """The second name of the Dovecot server: 127.0.0.1 and localhost are one inbox."""
    return "localhost" if dovecot.host == "127.0.0.1" else "127.0.0.1"


def test_the_same_inbox_under_another_host_name_is_refused(logged_in, user, factory, dovecot,
                                                           imap_user, local_credential):
    login, password = imap_user
    assert logged_in.post("/mailboxes/new", data=form_data(local_credential)).status_code == 302
    [first] = mailboxes_of(user.account_id)
    second = factory.credential(user.account, login=login.upper(), password=password,
                                host=other_name(dovecot), port=dovecot.tls_port,
                                name="Same box again")
    response = logged_in.post("/mailboxes/new", data=form_data(second))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert (f"Not saved: this is the same inbox as your mailbox {login}, connected already "
            "under another server name." in body)
    assert f'href="/mailboxes/{first.id}/edit"' in body and f"Open the mailbox {login}" in body
    assert mailboxes_of(user.account_id) == [first]
    # "Save anyway" is no way around it, and with htmx the whole form is replaced.
    hx = logged_in.post("/mailboxes/new", data=form_data(second, save_anyway="y"),
                        headers={"HX-Request": "true"})
    assert hx.status_code == 422 and hx.headers["HX-Retarget"] == "#mailbox-form"
    assert "same inbox as your mailbox" in hx.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == [first]


def test_a_failed_check_still_finds_the_same_inbox_by_address(logged_in, user, factory, dovecot,
                                                              imap_user, local_credential):
    login, _password = imap_user
    first = factory.mailbox(user.account, local_credential)
    wrong = factory.credential(user.account, login=login, password="wrong",
                               host=other_name(dovecot), port=dovecot.tls_port)
    response = logged_in.post("/mailboxes/new", data=form_data(wrong, save_anyway="y"))
    assert response.status_code == 422
    assert "same inbox as your mailbox" in response.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == [first]


def test_the_same_inbox_is_known_by_its_uidvalidity(app, logged_in, user, factory, dovecot,
                                                    imap_user, local_credential):
    """A host that no longer resolves (or resolves elsewhere) but read the same INBOX."""
    login, _password = imap_user
    check = imap.check_connection(local_credential.server_params(), **imap.options(app.config))
    old = factory.credential(user.account, login=login, host="old-name.invalid")
    first = factory.mailbox(user.account, old)
    response = logged_in.post("/mailboxes/new", data=form_data(local_credential))
    assert response.status_code == 302  # never synced: nothing says it is the same inbox
    db.session.delete(db.session.scalar(select(Mailbox).where(
        Mailbox.credential_id == local_credential.id)))
    first.folders[0].uidvalidity = check.uidvalidity
    db.session.commit()
    refused = logged_in.post("/mailboxes/new", data=form_data(local_credential))
    assert refused.status_code == 422
    assert "same inbox as your mailbox" in refused.get_data(as_text=True)
    assert mailboxes_of(user.account_id) == [first]


def test_the_same_inbox_in_another_account_is_refused_without_a_word_about_it(
        logged_in, user, factory, dovecot, imap_user, local_credential):
    login, password = imap_user
    stranger = factory.account()
    theirs = factory.mailbox(stranger, factory.credential(
        stranger, login=login, password=password, host=other_name(dovecot),
        port=dovecot.tls_port, name="Their secret name"))
    response = logged_in.post("/mailboxes/new", data=form_data(local_credential))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert ("Not saved: this inbox is already connected in another account. One mailbox can "
            "be connected only once." in body)
    assert "Their secret name" not in body and f"/mailboxes/{theirs.id}/" not in body
    assert other_name(dovecot) not in body and "Open the mailbox" not in body
    assert mailboxes_of(user.account_id) == []


def test_other_inboxes_on_the_same_server_are_accepted(logged_in, user, factory, dovecot,
                                                       imap_user, local_credential):
    login, password = imap_user
    dovecot.add_user("colleague-" + login, password)
    factory.mailbox(user.account, factory.credential(
        user.account, login="colleague-" + login, password=password,
        host=other_name(dovecot), port=dovecot.tls_port))
    assert logged_in.post("/mailboxes/new", data=form_data(local_credential)).status_code == 302
    assert len(mailboxes_of(user.account_id)) == 2


def test_of_two_mailboxes_on_one_inbox_the_first_stays_editable(logged_in, user, factory,
                                                                dovecot, imap_user,
                                                                local_credential):
    login, password = imap_user
    # Connected twice before the check existed.
    first = factory.mailbox(user.account, local_credential)
    second = factory.mailbox(user.account, factory.credential(
        user.account, login=login, password=password, host=other_name(dovecot),
        port=dovecot.tls_port))
    edit_first = logged_in.post(f"/mailboxes/{first.id}/edit", data=form_data(
        local_credential, repeat_value="2"))
    assert edit_first.status_code == 302
    edit_second = logged_in.post(f"/mailboxes/{second.id}/edit", data=form_data(
        second.credential, repeat_value="2"))
    assert edit_second.status_code == 422
    assert f'href="/mailboxes/{first.id}/edit"' in edit_second.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Mailbox, second.id).repeat_period_seconds == 86400


def test_an_older_mailbox_cannot_move_onto_a_connected_inbox(logged_in, user, factory, dovecot,
                                                            imap_user, local_credential):
    login, password = imap_user
    dovecot.add_user("colleague-" + login, password)
    older = factory.mailbox(user.account, factory.credential(
        user.account, login="colleague-" + login, password=password, host=dovecot.host,
        port=dovecot.tls_port))
    newer = factory.mailbox(user.account, local_credential)
    same = factory.credential(user.account, login=login, password=password,
                              host=other_name(dovecot), port=dovecot.tls_port)
    moved = logged_in.post(f"/mailboxes/{older.id}/edit", data=form_data(same))
    assert moved.status_code == 422
    assert f'href="/mailboxes/{newer.id}/edit"' in moved.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Mailbox, older.id).credential.login == "colleague-" + login


def test_the_same_inbox_refusal_in_russian(logged_in, user, factory, dovecot, imap_user,
                                           local_credential):
    login, password = imap_user
    first = factory.mailbox(user.account, local_credential)
    second = factory.credential(user.account, login=login, password=password,
                                host=other_name(dovecot), port=dovecot.tls_port)
    headers = {"Accept-Language": "ru-RU,ru;q=0.9"}
    mine = logged_in.post("/mailboxes/new", data=form_data(second), headers=headers)
    html = mine.get_data(as_text=True)
    assert mine.status_code == 422 and english_leftovers(html) == []
    assert f"Не сохранено: это тот же ящик, что и ваш почтовый ящик {login}" in html
    assert f"Открыть почтовый ящик {login}" in html
    db.session.delete(first)
    db.session.delete(local_credential)
    db.session.commit()
    stranger = factory.account()
    factory.mailbox(stranger, factory.credential(stranger, login=login, host=dovecot.host,
                                                 port=dovecot.tls_port))
    theirs = logged_in.post("/mailboxes/new", data=form_data(second), headers=headers)
    html = theirs.get_data(as_text=True)
    assert theirs.status_code == 422 and english_leftovers(html) == []
    assert "Не сохранено: этот ящик уже подключён в другом аккаунте." in html


ROUTES = [
    ("GET", "/mailboxes/{id}/edit"),
    ("POST", "/mailboxes/{id}/edit"),
    ("POST", "/mailboxes/{id}/active"),
    ("POST", "/mailboxes/{id}/check"),
    ("GET", "/mailboxes/{id}/delete"),
    ("POST", "/mailboxes/{id}/delete"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
@pytest.mark.parametrize("do", ["", "check", "folders"])
def test_another_accounts_mailbox_answers_404(logged_in, user, factory, method, route, do):
    foreign = factory.mailbox(factory.account(), active=True)
    mine = factory.credential(user.account)
    response = logged_in.open(route.format(id=foreign.id), method=method,
                              data=dict(form_data(mine, active="", do=do), active="0"))
    assert response.status_code == 404
    db.session.expire_all()
    after = db.session.get(Mailbox, foreign.id)
    assert after is not None and after.active and after.status is None
    assert after.credential_id != mine.id


def test_pages_in_russian(logged_in, user, factory, local_credential):
    mailbox = factory.mailbox(user.account, local_credential)
    factory.mailbox(user.account, status="auth_failed", status_params={"service": "gmail"},
                    repeat_period_seconds=7200, repeat_period_unit="hours")
    factory.mailbox(user.account, repeat_period_seconds=0)
    headers = {"Accept-Language": "ru-RU,ru;q=0.9"}
    logged_in.post(f"/mailboxes/{mailbox.id}/check", headers=headers)
    hx = dict(headers, **{"HX-Request": "true"})
    pages = {
        url: logged_in.get(url, headers=headers)
        for url in ["/mailboxes/", "/mailboxes/?q=zzz", "/mailboxes/new",
                    f"/mailboxes/{mailbox.id}/edit", f"/mailboxes/{mailbox.id}/delete",
                    "/credentials/", "/credentials/?q=zzz", "/credentials/new",
                    f"/credentials/{local_credential.id}/edit",
                    f"/credentials/{local_credential.id}/delete",
                    "/credentials/new?inline=1"]
    }
    pages["bad mailbox"] = logged_in.post("/mailboxes/new", data={"repeat_value": "x"},
                                          headers=headers)
    pages["bad credentials"] = logged_in.post("/credentials/new", data={"service": "other"},
                                              headers=headers)
    pages["check"] = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, do="check", folders=["Nope"]), headers=hx)
    pages["folders"] = logged_in.post("/mailboxes/new", data=form_data(
        local_credential, do="folders"), headers=hx)
    unreachable = factory.credential(user.account)
    pages["refused save"] = logged_in.post("/mailboxes/new", data=form_data(unreachable),
                                           headers=hx)
    pages["server fields"] = logged_in.get("/credentials/server-fields?service=outlook",
                                           headers=hx)
    for name, response in pages.items():
        html = response.get_data(as_text=True)
        assert response.status_code < 500, name
        assert english_leftovers(html) == [], name
    listing = pages["/mailboxes/"].get_data(as_text=True)
    assert '<html lang="ru">' in listing and "Интеграция работает." in listing
    assert "Почтовые ящики" in listing and "Учётные данные" in listing
    refused = pages["refused save"].get_data(as_text=True)
    assert "Не сохранено: проверка подключения не прошла." in refused and "Всё равно сохранить" in refused


def test_two_simultaneous_saves_of_one_inbox_keep_one(app, user, factory, dovecot, imap_user,
                                                       local_credential):
    """Two browsers save the same inbox under its two host names at the same moment: the
    saves take turns, so the second sees the first and is refused."""
    import threading

    from tests.conftest import Client

    login, password = imap_user
    again = factory.credential(user.account, login=login, password=password,
                               host=other_name(dovecot), port=dovecot.tls_port, name="Again")
    clients = []
    for _n in range(2):
        client = Client(app, app.response_class, use_cookies=True)
        client.login(user)
        client.get("/mailboxes/new")
        clients.append(client)
    start, answers = threading.Barrier(2), []

    def save(client, data):
        start.wait()
        answers.append(client.post("/mailboxes/new", data=data).status_code)

    threads = [threading.Thread(target=save, args=(c, form_data(cred)))
               for c, cred in zip(clients, (local_credential, again))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [302, 422]
    db.session.expire_all()
    assert len(mailboxes_of(user.account_id)) == 1
