"""Offline conversions: the report's new requests as Metrica and GA upload files, read back."""

import csv
import io
import re
from datetime import UTC, timedelta

import pytest

from tracker.extensions import db
from tracker.models import utcnow


def read_file(client, url):
    """(header, rows) of an offline-conversions download, checking its headers."""
    response = client.get(url, buffered=True)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="(metrica-offline-conversions|ga-offline-events)'
                        r'-\d{4}-\d\d-\d\d\.csv"', response.headers["Content-Disposition"])
    body = response.get_data()
    assert not body.startswith(b"\xef\xbb\xbf")  # the counters read line 1 as column names
    header, *rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    return header, rows


def unix(at):
    return int(at.replace(tzinfo=UTC).timestamp())


@pytest.fixture
def seeded(factory, user):
    """New requests with and without client ids, a repeat, a hostile id, another account's."""
    account = user.account
    rule = factory.rule(account, address="ads@shop.example")
    box = factory.mailbox(account)
    base = utcnow().replace(microsecond=0) - timedelta(days=2)

    def email(n, counted=True, channel="paid", ym="", ga="", tracked=True, mailbox=box):
        source = {"channel": channel, "utm_source": "google", "ym_client_id": ym,
                  "ga_client_id": ga} if tracked else None
        return factory.email(
            mailbox, at=base + timedelta(hours=n, microseconds=250_000 * n), counted=counted,
            rule_id=rule.id if tracked and mailbox is box else None, channel=channel if tracked
            else None, attribution="static" if tracked else None, source=source)

    rows = {
        "both": email(0, ym="1700000000123456789", ga="111.222"),
        "ym_only": email(1, channel="organic", ym="1699999999000000001"),
        "ga_only": email(2, ga="333.444"),
        "untracked": email(3, tracked=False),
        "repeat": email(4, counted=False, ym="1700000000123456789", ga="111.222"),
        "hostile": email(5, ym="=HYPERLINK(\"http://evil\")", ga="-2+3"),
        "newest": email(6, ym="1700000000999", ga="555.666"),
    }
    stranger = factory.user()
    rows["foreign"] = email(7, ym="1800000000000", ga="777.888",
                            mailbox=factory.mailbox(stranger.account))
    return rows


def test_metrica_file_has_each_new_request_with_a_client_id(logged_in, seeded):
    header, rows = read_file(logged_in, "/emails/offline-conversions/metrica.csv?target=lead_email")
    assert header == ["ClientId", "Target", "DateTime"]
    expected = [[seeded[key].source["ym_client_id"], "lead_email",
                 str(unix(seeded[key].internaldate))] for key in ("both", "ym_only", "newest")]
    assert rows == expected  # oldest first; repeats, no ids, hostile ids, strangers left out
    assert all(int(row[2]) < unix(utcnow()) for row in rows)  # Metrica takes past times only


def test_metrica_target_defaults_and_is_checked(logged_in, seeded):
    _header, rows = read_file(logged_in, "/emails/offline-conversions/metrica.csv")
    assert {row[1] for row in rows} == {"email_request"}
    for bad in ("=cmd|' /C calc'!A0", "-1", "with space", "x" * 101, "цель"):
        response = logged_in.get("/emails/offline-conversions/metrica.csv",
                                 query_string={"target": bad})
        assert response.status_code == 422
        assert response.mimetype == "text/html"
        assert "A goal id is letters, digits" in response.get_data(as_text=True)


def test_ga_file_has_client_ids_and_microsecond_times(logged_in, seeded):
    header, rows = read_file(
        logged_in, "/emails/offline-conversions/ga.csv?event_name=email_lead&measurement_id=g-abc123XYZ")
    assert header == ["measurement_id", "client_id", "timestamp_micros", "event_name"]
    expected = []
    for key in ("both", "ga_only", "newest"):
        at = seeded[key].internaldate
        expected.append(["G-ABC123XYZ", seeded[key].source["ga_client_id"],
                         str(unix(at) * 1_000_000 + at.microsecond), "email_lead"])
    assert rows == expected
    # Without a measurement ID the column is left out.
    header, rows = read_file(logged_in, "/emails/offline-conversions/ga.csv")
    assert header == ["client_id", "timestamp_micros", "event_name"]
    assert [row[0] for row in rows] == ["111.222", "333.444", "555.666"]
    assert {row[2] for row in rows} == {"email_request"}


@pytest.mark.parametrize("query, field", [
    ("event_name=1abc", "An event name is letters"),
    ("event_name=a-b", "An event name is letters"),
    ("measurement_id=UA-12345-1", "A measurement ID looks like"),
])
def test_ga_arguments_are_checked(logged_in, seeded, query, field):
    response = logged_in.get(f"/emails/offline-conversions/ga.csv?{query}")
    assert response.status_code == 422
    assert field in response.get_data(as_text=True)


def test_files_take_the_reports_filters(logged_in, seeded):
    _header, rows = read_file(logged_in, "/emails/offline-conversions/metrica.csv?channel=organic")
    assert [row[0] for row in rows] == [seeded["ym_only"].source["ym_client_id"]]
    day = seeded["newest"].internaldate.date().isoformat()
    _header, rows = read_file(
        logged_in, f"/emails/offline-conversions/ga.csv?period=custom&date_from={day}&date_to={day}")
    same_day = [row.source["ga_client_id"] for key, row in seeded.items()
                if key in ("both", "ga_only", "newest") and row.internaldate.date().isoformat() == day]
    assert "555.666" in same_day
    assert [row[0] for row in rows] == same_day
    # Only repeats: nothing counts.
    header, rows = read_file(logged_in, "/emails/offline-conversions/metrica.csv?status=repeat")
    assert header == ["ClientId", "Target", "DateTime"] and rows == []


def test_no_cell_can_start_a_formula(logged_in, seeded):
    for kind in ("metrica", "ga"):
        _header, rows = read_file(logged_in, f"/emails/offline-conversions/{kind}.csv")
        assert rows
        for row in rows:
            for cell in row:
                assert cell[:1] not in "=+-@\t\r", cell
                assert "HYPERLINK" not in cell


def test_page_says_how_many_emails_have_a_client_id(logged_in, seeded):
    response = logged_in.get("/emails/offline-conversions")
    assert response.status_code == 200
    text = re.sub(r"\s+", " ", response.get_data(as_text=True))
    # New requests of the account: both, ym_only, ga_only, untracked, hostile, newest.
    counted = [row for key, row in seeded.items() if key != "foreign" and row.counted]
    with_ym = [row for row in counted if re.fullmatch(r"\d+", (row.source or {}).get(
        "ym_client_id", ""))]
    with_ga = [row for row in counted if re.fullmatch(r"\d+\.\d+", (row.source or {}).get(
        "ga_client_id", ""))]
    assert f"This filter has {len(counted)} new requests." in text
    assert f"{len(with_ym)} of {len(counted)} emails have a Metrica client ID." in text
    assert f"{len(with_ga)} of {len(counted)} emails have a Google Analytics client ID." in text
    assert f"{len(counted) - len(with_ym)} emails without one are left out." in text
    # The forms keep the filter for the download.
    response = logged_in.get("/emails/offline-conversions?channel=organic")
    html = response.get_data(as_text=True)
    assert '<input type="hidden" name="channel" value="organic">' in html
    assert "1 of 1 emails have a Metrica client ID." in re.sub(r"\s+", " ", html)


def test_emails_report_links_to_the_offline_page_with_its_filter(logged_in, seeded):
    html = logged_in.get("/emails?channel=paid").get_data(as_text=True)
    assert 'href="/emails/offline-conversions?channel=paid"' in html


def test_page_in_russian(logged_in, user, seeded):
    from tests.test_i18n import english_leftovers

    user.locale = "ru"
    db.session.commit()
    for url in ("/emails/offline-conversions",
                "/emails/offline-conversions/metrica.csv?target=-bad",
                "/emails/offline-conversions/ga.csv?event_name=1&measurement_id=x"):
        html = logged_in.get(url).get_data(as_text=True)
        assert "Офлайн-конверсии" in html
        assert english_leftovers(html) == [], url


def test_other_accounts_and_signed_out_users_get_nothing(client, factory, seeded):
    response = client.get("/emails/offline-conversions/metrica.csv")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    stranger = factory.user()
    client.login(stranger)
    header, rows = read_file(client, "/emails/offline-conversions/metrica.csv")
    assert rows == []
    assert client.get("/emails/offline-conversions/other.csv").status_code == 404


def test_summary_matches_the_files(logged_in, seeded, ctx, user):
    from tracker.reports import emails as report
    from tracker.reports import offline
    from tracker.reports.periods import zone

    query, _invalid = report.filtered(user.account_id, report.Filters(), zone("UTC"))
    summary = offline.summary(query)
    _h, metrica = read_file(logged_in, "/emails/offline-conversions/metrica.csv")
    _h, ga = read_file(logged_in, "/emails/offline-conversions/ga.csv")
    assert (summary.metrica, summary.ga) == (len(metrica), len(ga))
    assert summary.total == db.session.scalar(
        db.select(db.func.count()).select_from(query.where(
            report.Email.counted.is_(True)).subquery()))


def test_a_download_never_read_gives_its_connection_back(logged_in, seeded, ctx):
    pool = db.engine.pool
    before = pool.checkedout()
    from tests.test_exports import streamed

    context, response = streamed(logged_in, "/emails/offline-conversions/metrica.csv")
    assert response.status_code == 200
    assert pool.checkedout() == before + 1  # the export's own connection, held for the body
    context.run(response.close)  # the client went away without reading a byte
    assert pool.checkedout() == before
