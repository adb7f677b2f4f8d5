"""The conftest Dovecot fixture: a fresh user per test, mail delivered and read back."""

from email.message import EmailMessage


def test_imap_user_receives_mail(dovecot, imap_user):
    login, password = imap_user
    message = EmailMessage()
    message["From"] = "lead@example.org"
    message["To"] = login
    message["Subject"] = "Hello"
    message.set_content("Body")
    uid = dovecot.deliver(login, message.as_bytes())
    with dovecot.client(login) as imap:
        info = imap.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1
        assert imap.search(["ALL"]) == [uid]
