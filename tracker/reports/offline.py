"""Offline conversions: the new requests of the emails report as files for ad analytics.

The counted emails (new requests) of the report's filter, each with the client id
its visit had, in two upload formats:

- Yandex Metrica, "Upload offline conversions" by ClientID: a UTF-8 CSV whose
  first line names the columns ClientId, Target, DateTime; Target is the id of a
  JavaScript-event goal, DateTime the Unix time of the conversion (seconds);
- Google Analytics 4, offline event data import: measurement_id (when the user
  gives it), client_id, timestamp_micros, event_name.

The client ids come from the source snapshot the email kept at attribution
(Email.source), so a visit deleted later does not lose them. Emails without a
client id (not tracked, or the visitor had no Metrica/GA cookie) are left out,
and so are ids of a shape the counters never make (a visitor can send anything):
`summary` counts both, for the page that offers the files. Every cell also goes
through the spreadsheet guard of the CSV export (tracker.reports.exports.clean).
"""

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC

from flask import Response, stream_with_context
from sqlalchemy import String, type_coerce

from tracker.extensions import db
from tracker.models import Email
from tracker.reports import periods
from tracker.reports.exports import CSV_CHUNK, YIELD_PER, clean

DEFAULT_TARGET = "email_request"
# A Metrica goal id as typed in its JavaScript-event goal: letters, digits, _ . - (and
# not starting with a character a spreadsheet would read as a formula).
TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
# GA4 event names: a letter first, then letters, digits and underscores, 40 at most.
EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
# A GA4 web stream's measurement id.
MEASUREMENT_ID = re.compile(r"G-[A-Z0-9]{4,20}")

# The shapes the counters give: Metrica's _ym_uid is digits; GA's client id (from the
# _ga cookie, tracker.pageviews.ga_client_id) is two numbers joined by a dot.
_YM_ID = re.compile(r"[0-9]{1,40}")
_GA_ID = re.compile(r"[0-9]{1,20}\.[0-9]{1,20}")

KINDS = {
    "metrica": ("ym_client_id", _YM_ID),
    "ga": ("ga_client_id", _GA_ID),
}


@dataclass
class Summary:
    """How many new requests the filter has, and how many of them each file can carry."""

    total: int = 0
    metrica: int = 0
    ga: int = 0

    @property
    def metrica_left_out(self):
        return self.total - self.metrica

    @property
    def ga_left_out(self):
        return self.total - self.ga


def counted(query):
    """The new requests (counted emails) of the report's filtered select(Email)."""
    return query.where(Email.counted.is_(True))


def _rows(query, connection=None):
    """(internaldate, Metrica id, GA id) of the filter's new requests, read in batches."""
    source = Email.source
    return (connection or db.session.connection()).execute(
        counted(query)
        .with_only_columns(Email.internaldate,
                           type_coerce(source["ym_client_id"].as_string(), String),
                           type_coerce(source["ga_client_id"].as_string(), String),
                           maintain_column_froms=False)
        .select_from(Email)
        .order_by(None)
        .order_by(Email.internaldate.asc(), Email.id.asc())
        .execution_options(yield_per=YIELD_PER)
    )


def _valid(value, shape):
    return isinstance(value, str) and shape.fullmatch(value) is not None


def summary(query):
    """Summary of the new requests of the filter: all of them, and those with each id."""
    result = Summary()
    rows = _rows(query)
    try:
        for partition in rows.partitions():
            for _at, ym, ga in partition:
                result.total += 1
                result.metrica += _valid(ym, _YM_ID)
                result.ga += _valid(ga, _GA_ID)
    finally:
        rows.close()
    return result


def _unix(at):
    """Unix time (whole seconds) of a naive UTC datetime."""
    return int(at.replace(tzinfo=UTC).timestamp())


def _conversions(rows, kind):
    """(client id, naive UTC time) of each row with a valid id of the kind, oldest first."""
    position = 1 if kind == "metrica" else 2
    shape = KINDS[kind][1]
    for partition in rows.partitions():
        for row in partition:
            client_id = row[position]
            if _valid(client_id, shape):
                yield client_id, row[0]


def _header_and_rows(kind, name, measurement_id):
    if kind == "metrica":
        return ["ClientId", "Target", "DateTime"], \
            lambda client_id, at: [client_id, name, str(_unix(at))]
    header = ["client_id", "timestamp_micros", "event_name"]
    micros = lambda at: str(_unix(at) * 1_000_000 + at.microsecond)  # noqa: E731
    if measurement_id:
        return ["measurement_id", *header], \
            lambda client_id, at: [measurement_id, client_id, micros(at), name]
    return header, lambda client_id, at: [client_id, micros(at), name]


def filename(kind, tz):
    prefix = "metrica-offline-conversions" if kind == "metrica" else "ga-offline-events"
    return f"{prefix}-{periods.today(tz).isoformat()}.csv"


def csv_response(query, kind, name, tz, measurement_id=""):
    """The filter's new requests with a client id of `kind` as a streamed CSV download.

    `name` is the Metrica goal id (Target) or the GA event name; the caller checks it
    against TARGET or EVENT_NAME. UTF-8 without a byte order mark: the counters read
    the first line as the column names.
    """
    header, cells = _header_and_rows(kind, name, measurement_id)
    # A connection of its own, not the session's: the request's teardown ends the
    # session's transaction when the view returns, before the body is read, and on
    # PostgreSQL the rows are read from a server-side cursor that lives in it.
    connection = db.engine.connect()
    try:
        rows = _rows(query, connection)
    except BaseException:
        connection.close()
        raise

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        try:
            for client_id, at in _conversions(rows, kind):
                writer.writerow([clean(cell) for cell in cells(client_id, at)])
                if buffer.tell() >= CSV_CHUNK:
                    yield buffer.getvalue().encode("utf-8")
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue().encode("utf-8")
        finally:
            rows.close()
            connection.close()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    # Also when the body is never read (the client left before the first byte).
    response.call_on_close(connection.close)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename(kind, tz)}"'
    response.headers["Cache-Control"] = "no-store"
    return response
