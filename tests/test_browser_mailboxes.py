"""In a real browser: connect the local Dovecot as "Other service", then switch it off and on."""

import pytest
from playwright.sync_api import expect

from tests.test_browser_sites import sign_in


@pytest.fixture(autouse=True)
def imap_settings(app_config, dovecot):
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{dovecot.port},{dovecot.tls_port}",
        IMAP_CA_FILE=str(dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
    )


def test_add_a_mailbox_with_other_service(page, live_server, user, dovecot, imap_user):
    login, password = imap_user
    dovecot.create_folder(login, "Spam")
    sign_in(page, live_server, user)
    page.get_by_role("link", name="Mailboxes").click()
    page.get_by_role("button", name="Add mailbox").click()
    expect(page.get_by_role("heading", name="New mailbox")).to_be_visible()

    # New credentials in the dialog, without leaving the mailbox form.
    page.get_by_role("button", name="New credentials").click()
    dialog = page.locator("#credential-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("Local Dovecot")
    host = dialog.get_by_label("IMAP server")
    expect(host).to_be_hidden()  # a preset (Yandex) is chosen: its server is fixed
    expect(dialog.get_by_text("imap.yandex.ru:993")).to_be_visible()
    dialog.get_by_label("Mail service").select_option(label="Other service")
    expect(host).to_be_visible()  # "Other service" reveals host, port and security in place
    host.fill("127.0.0.1")
    dialog.get_by_label("Port").fill(str(dovecot.port))
    dialog.get_by_label("Security").select_option(label="STARTTLS")
    dialog.get_by_label("Login").fill(login)
    dialog.get_by_label("Password").fill(password)
    dialog.get_by_role("button", name="Test connection").click()
    expect(dialog.get_by_text("Integration works.")).to_be_visible()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    credential = page.get_by_label("Credentials")
    expect(credential.locator("option:checked")).to_have_text(f"Local Dovecot — {login}")

    # Folders come from the server.
    page.get_by_role("button", name="Load folders from the server").click()
    expect(page.get_by_text("Folders loaded from the server.")).to_be_visible()
    page.get_by_label("Spam").check()

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#mailbox-check-result")).to_have_text("Integration works.")
    page.get_by_label("Repeat period").fill("12")
    page.get_by_label("Unit").select_option(label="hours")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text(
        f"Mailbox {login} saved. Integration works: 2 folders found (INBOX, Spam).")).to_be_visible()
    row = page.locator("tr", has_text=login)
    expect(row).to_contain_text("12 hours")
    expect(row.locator(".mailbox-status")).to_contain_text("Integration works.")

    # The «Active» switch, in place.
    switch = row.get_by_role("switch")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "false")
    page.reload()
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "false")
    row.get_by_role("switch").click()
    expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "true")

    # Test connection on demand from the list.
    row.get_by_role("button", name="Test connection").click()
    expect(row.locator(".mailbox-status")).to_contain_text("Integration works.")


def test_inline_errors_in_the_forms(page, live_server, user):
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/mailboxes/new")
    page.get_by_label("Repeat period").fill("400")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Choose the credentials of the mailbox, or add new ones.")).to_be_visible()
    expect(page.get_by_text("The repeat period can be at most 365 days.")).to_be_visible()
    page.get_by_role("button", name="New credentials").click()
    dialog = page.locator("#credential-dialog")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("Give the credentials a name.")).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def test_a_failed_check_needs_save_anyway(page, live_server, user, factory, dovecot, imap_user):
    login, password = imap_user
    factory.credential(user.account, login=login, password=password, host=dovecot.host,
                       port=dovecot.tls_port, name="Local box")
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/mailboxes/new")
    page.locator("#credential").select_option(label=f"Local box — {login}")
    page.get_by_label("INBOX").uncheck()
    page.get_by_role("button", name="Load folders from the server").click()
    expect(page.get_by_text("Folders loaded from the server.")).to_be_visible()
    page.evaluate("""() => {
        const box = document.querySelector('input[name=folders]').cloneNode();
        box.value = 'Gone'; box.checked = true;
        document.querySelector('#folders').append(box);
    }""")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Not saved: the connection check failed.")).to_be_visible()
    expect(page.get_by_text("there is no folder “Gone”")).to_be_visible()
    page.get_by_label("Save anyway").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("saved, but the connection check failed")).to_be_visible()
