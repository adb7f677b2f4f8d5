"""The mailbox list's sync widget, «Sync now», the sync log, and their account isolation."""

import re

import pytest
from redis import Redis
from rq import Queue

from tests.services.ports import free_port
from tests.test_sync import box, emails, imap_settings, mail, work  # noqa: F401
from tracker.extensions import db
from tracker.jobs.sync import sync_job_id
from tracker.models import SyncRun, utcnow

HX = {"HX-Request": "true"}


@pytest.fixture
def mine(box, user):
    """`box`, owned by the signed-in user's account."""
    assert box.mailbox.account_id == user.account_id
    return box


def queued_ids(app):
    redis = Redis.from_url(app.config["REDIS_URL"])
    try:
        return Queue(app.config["RQ_QUEUE"], connection=redis).job_ids
    finally:
        redis.close()


def test_list_shows_the_widget_and_the_count(logged_in, mine):
    body = logged_in.get("/mailboxes/").get_data(as_text=True)
    widget = body[body.index(f'id="sync-{mine.id}"'):]
    assert "Sync now" in widget and f'href="/mailboxes/{mine.id}/runs"' in widget
    assert "hx-trigger" not in widget[:widget.index(">")]  # nothing pending: no polling
    assert f'<span id="email-count-{mine.id}">0</span>' in body
    assert "never" in widget


def test_sync_now_queues_and_the_widget_polls_until_done(app, logged_in, mine):
    mine.deliver(mail(1))
    mine.deliver(mail(2))
    response = logged_in.post(f"/mailboxes/{mine.id}/sync", headers=HX)
    assert response.status_code == 200
    widget = response.get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in widget and "Queued…" in widget
    assert f'hx-get="/mailboxes/{mine.id}/sync-status"' in widget
    assert re.search(r"<button[^>]*disabled[^>]*>Sync now", widget)
    assert queued_ids(app) == [sync_job_id(mine.id)]

    # Clicking again while it is pending queues nothing more.
    logged_in.post(f"/mailboxes/{mine.id}/sync", headers=HX)
    assert queued_ids(app) == [sync_job_id(mine.id)]

    polled = logged_in.get(f"/mailboxes/{mine.id}/sync-status", headers=HX)
    assert polled.status_code == 200 and 'hx-trigger="every 2s"' in polled.get_data(as_text=True)

    work(app)
    done = logged_in.get(f"/mailboxes/{mine.id}/sync-status", headers=HX)
    assert done.status_code == 286  # htmx stops polling
    html = done.get_data(as_text=True)
    assert "hx-trigger" not in html.split("</div>")[0]
    assert "Last run: 2 new emails" in html
    assert f'<span id="email-count-{mine.id}" hx-swap-oob="true">2</span>' in html
    assert f'id="status-{mine.id}" hx-swap-oob="true"' in html and "Integration works." in html
    assert len(emails(mine.id)) == 2


def test_sync_now_without_javascript(app, logged_in, mine):
    response = logged_in.post(f"/mailboxes/{mine.id}/sync")
    assert response.status_code == 302 and response.headers["Location"] == "/mailboxes/"
    page = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert f"Mailbox {mine.login} will be synced in a moment." in page
    assert "Queued…" in page
    assert queued_ids(app) == [sync_job_id(mine.id)]


def test_an_inactive_mailbox_is_not_synced_now(app, logged_in, mine):
    mine.mailbox.active = False
    db.session.commit()
    response = logged_in.post(f"/mailboxes/{mine.id}/sync", headers=HX)
    assert "is inactive: switch it on to sync it." in response.get_data(as_text=True)
    assert queued_ids(app) == []
    response = logged_in.post(f"/mailboxes/{mine.id}/sync")
    assert response.status_code == 302
    assert "is inactive" in logged_in.get("/mailboxes/").get_data(as_text=True)


def test_sync_now_needs_the_form_token(app, client, user, mine):
    client.login(user)
    client.csrf_token = None
    assert client.post(f"/mailboxes/{mine.id}/sync").status_code == 400
    assert queued_ids(app) == []


def test_without_redis_the_pages_still_answer(app, logged_in, mine):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    assert logged_in.get("/mailboxes/").status_code == 200
    response = logged_in.post(f"/mailboxes/{mine.id}/sync", headers=HX)
    assert response.status_code == 200
    assert "The job queue is not reachable right now" in response.get_data(as_text=True)
    assert logged_in.get(f"/mailboxes/{mine.id}/runs").status_code == 200


def test_the_log_shows_runs_folders_and_events(app, logged_in, mine, dovecot):
    mine.deliver(mail(1))
    logged_in.post(f"/mailboxes/{mine.id}/sync")
    work(app)
    dovecot.set_uidvalidity(mine.login, "INBOX", 777)
    logged_in.post(f"/mailboxes/{mine.id}/sync")
    work(app)
    db.session.add(SyncRun(mailbox_id=mine.id, started_at=utcnow(), finished_at=utcnow(),
                           status="server_error",
                           status_params={"detail": "<script>alert(1)</script>"},
                           events=[{"code": "unreadable", "folder": "<b>INBOX</b>", "uids": [7, 9],
                                    "count": 2}]))
    db.session.commit()
    page = logged_in.get(f"/mailboxes/{mine.id}/runs").get_data(as_text=True)
    assert "1 email stored." in page
    assert page.count("(Sync now)") == 2
    assert "was renumbered by the server (UIDVALIDITY" in page and "→ 777): 1 stored emails" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "<td>777</td>" in page  # the folder's current UIDVALIDITY
    assert ("2 messages in folder “&lt;b&gt;INBOX&lt;/b&gt;” could not be read from the server "
            "and were passed over (UIDs 7, 9).") in page


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/mailboxes/{}/sync"),
    ("get", "/mailboxes/{}/sync-status"),
    ("get", "/mailboxes/{}/runs"),
])
def test_another_accounts_mailbox_is_404(app, logged_in, factory, method, path):
    foreign = factory.mailbox(factory.account())
    response = getattr(logged_in, method)(path.format(foreign.id), headers=HX)
    assert response.status_code == 404
    assert queued_ids(app) == []
    db.session.expire_all()
    assert db.session.get(SyncRun, 1) is None


def test_pages_need_a_login(client, factory):
    mailbox = factory.mailbox(factory.account())
    for path in ("/mailboxes/{}/sync-status", "/mailboxes/{}/runs"):
        response = client.get(path.format(mailbox.id))
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sync_pages_in_russian(app, client, user, mine, dovecot):
    from tests.test_i18n import english_leftovers

    user.locale = "ru"
    db.session.commit()
    client.login(user)
    mine.deliver(mail(1))
    client.post(f"/mailboxes/{mine.id}/sync")
    work(app)
    dovecot.set_uidvalidity(mine.login, "INBOX", 555)
    client.post(f"/mailboxes/{mine.id}/sync")
    work(app)
    pages = {
        "list": client.get("/mailboxes/"),
        "runs": client.get(f"/mailboxes/{mine.id}/runs"),
        "widget": client.get(f"/mailboxes/{mine.id}/sync-status", headers=HX),
        "queued": client.post(f"/mailboxes/{mine.id}/sync", headers=HX),
    }
    for name, response in pages.items():
        assert response.status_code < 500, name
        assert english_leftovers(response.get_data(as_text=True)) == [], name
    assert "Сервер перенумеровал папку «INBOX»" in pages["runs"].get_data(as_text=True)
    assert "Последний запуск: 0 новых писем" in pages["widget"].get_data(as_text=True)
    assert "В очереди…" in pages["queued"].get_data(as_text=True)


def test_a_missing_folder_is_a_partly_done_run_naming_it(app, logged_in, mine):
    from tracker.models import MailboxFolder

    mine.mailbox.folders.append(MailboxFolder(name="Gone", position=1))
    db.session.commit()
    mine.deliver(mail(1))
    logged_in.post(f"/mailboxes/{mine.id}/sync")
    work(app)
    widget = logged_in.get(f"/mailboxes/{mine.id}/sync-status", headers=HX).get_data(as_text=True)
    assert ("Last run partly done: 1 new email; folder “Gone” is missing, the others synced"
            in widget)
    assert "Last run failed" not in widget
    listing = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert "Partly working" in listing
    assert "Folder “Gone” is missing; the other folders are read." in listing
    runs = logged_in.get(f"/mailboxes/{mine.id}/runs").get_data(as_text=True)
    assert "Partly done" in runs and "Folder “Gone” is missing; the other folders synced." in runs
    russian = {"Accept-Language": "ru"}
    ru_widget = logged_in.get(f"/mailboxes/{mine.id}/sync-status",
                              headers=dict(HX, **russian)).get_data(as_text=True)
    assert "Последний запуск выполнен частично: 1 новое письмо; папки «Gone» нет" in ru_widget
    ru_runs = logged_in.get(f"/mailboxes/{mine.id}/runs", headers=russian).get_data(as_text=True)
    assert "Выполнено частично" in ru_runs


def test_a_run_whose_only_folder_is_missing_failed(app, logged_in, mine):
    mine.mailbox.folders[0].name = "Gone"
    db.session.commit()
    logged_in.post(f"/mailboxes/{mine.id}/sync")
    work(app)
    widget = logged_in.get(f"/mailboxes/{mine.id}/sync-status", headers=HX).get_data(as_text=True)
    assert "Last run failed" in widget and "partly" not in widget
    runs = logged_in.get(f"/mailboxes/{mine.id}/runs").get_data(as_text=True)
    assert "Partly done" not in runs and "there is no folder “Gone”" in runs
