"""CSV and Excel exports of the emails report, streamed with constant memory.

Both take the report's filtered `select(Email)` (tracker.reports.emails.filtered) and
write every matching email, newest first, with the report's columns plus the client
ids. Rows are read as plain columns in batches (`yield_per`) and written as they
come, so memory does not grow with the number of rows:

- CSV: UTF-8 with a byte order mark (spreadsheet programs then read Cyrillic right),
  sent in chunks of about 256 KB while the rows are read;
- XLSX: xlsxwriter in constant-memory mode writes the sheet to a temporary file
  (an .xlsx is a zip archive: it can only be sent once complete), which is then
  sent in chunks and deleted. A sheet holds at most 1,048,576 rows: the export
  stops there and says so in its last row.

Every text cell comes from outside (subjects, names, URLs, utm values), so each is
cleaned the same way in both formats: invisible and bidi control characters
(Unicode categories Cc and Cf, e.g. U+202E, U+200B, U+FEFF) are removed by
`tracker.reports.text.visible`, the function the report pages use, and a cell
that would start a formula (`=`, `+`, `-`, `@`, tab, CR, after any spaces) gets a
leading `'` (OWASP "CSV injection").
"""

import csv
import io
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta

import orjson
from flask import Response, stream_with_context
from flask_babel import gettext as _
from sqlalchemy import String, type_coerce

from tracker.extensions import db
from tracker.models import Credential, Email, Mailbox, Rule
from tracker.models.emails import BOT_VISIT
from tracker.reports import periods
from tracker.reports.text import INVISIBLE, visible

# Rows fetched from the database per round trip.
YIELD_PER = 2000
# A CSV chunk is sent once it holds about this many characters.
CSV_CHUNK = 256 * 1024
# Bytes read and sent at a time from the finished .xlsx file.
FILE_CHUNK = 256 * 1024
# Excel's rows per sheet, the header included.
XLSX_MAX_ROWS = 1_048_576

FORMULA_START = frozenset("=+-@\t\r")
# The fields of Email.source after utm_source, in column order.
SOURCE_FIELDS = ("utm_medium", "utm_campaign", "utm_content", "utm_term", "landing_url",
                 "referrer", "ga_client_id", "ym_client_id")


def _columns(tz):
    """(header, width in characters in the .xlsx) of each column, in order."""
    return [
        (_("Received (%(zone)s)", zone=tz.key), 20),
        (_("Mailbox"), 26),
        (_("Sender name"), 24),
        (_("Sender address"), 30),
        (_("Tracked address"), 30),
        (_("Recipient"), 30),
        (_("Subject"), 50),
        (_("New request or repeat"), 14),
        (_("Rule"), 22),
        (_("Attribution"), 18),
        (_("Channel"), 16),
        ("utm_source", 18),
        ("utm_medium", 14),
        ("utm_campaign", 20),
        ("utm_content", 16),
        ("utm_term", 16),
        (_("Landing page"), 40),
        (_("Referrer"), 40),
        (_("Visit ID"), 10),
        (_("Google Analytics client ID"), 24),
        (_("Yandex Metrica client ID"), 24),
        (_("Email ID"), 10),
    ]


def _labels():
    """Codes stored in the database -> words in the reader's language, resolved once."""
    from tracker.forms.rules import CHANNEL_LABELS, MODE_LABELS

    kinds = {code: str(label) for code, label in MODE_LABELS.items()}
    kinds.update(fallback=_("Fallback address"))
    kinds[None] = _("Not tracked")
    return {
        "status": {True: _("New"), False: _("Repeat")},
        "kind": kinds,
        "uncertain": _("uncertain"),
        "spam": _("suspected spam"),
        "channel": {code: str(label) for code, label in CHANNEL_LABELS.items()},
    }


# ------------------------------------------------------------------ cells


def clean(value):
    """A text cell safe to open in a spreadsheet: no invisible characters, no formula.

    `visible` (shared with the report pages) drops control, format and surrogate
    characters and turns line breaks and tabs into spaces; then a cell whose first
    character (after spaces) could start a formula gets a leading apostrophe.
    """
    if value is None:
        return ""
    value = visible(value)
    if value.lstrip(" ")[:1] in FORMULA_START:
        value = "'" + value
    return value


# The characters `visible` removes although str.isprintable() accepts them.
_FILLERS = tuple(INVISIBLE)
# A cell starting a formula, in cells each preceded by NUL (which no cleaned cell
# contains); the literal NUL first lets the search skip ahead at C speed.
_FORMULA = re.compile(r"\x00 *[=+\-@\t\r]")


def clean_cells(cells):
    """[clean(cell) for cell in cells], for a row of strings, in a few C-speed passes.

    Most rows need no change: one check of the row decides that, instead of two
    Python calls per cell (an export reads about 20 text cells per row). A value
    that is not a string (a number or null in the JSON source) becomes text first.
    """
    try:
        joined = "".join(cells)
    except TypeError:
        cells = [_text(cell) for cell in cells]
        joined = "".join(cells)
    if not joined.isprintable() or (
            not joined.isascii() and any(filler in joined for filler in _FILLERS)):
        cells = [visible(cell) for cell in cells]
    if _FORMULA.search("\x00" + "\x00".join(cells)):
        cells = ["'" + cell if cell.lstrip(" ")[:1] in FORMULA_START else cell
                 for cell in cells]
    return cells


def _text(value):
    """A stored value as text ("" for none): JSON source fields may be any type."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _number(value):
    """An id column: an int, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------ rows


def _select(query):
    """The export's plain columns of the filtered emails, newest first, read in batches."""
    return (
        query.with_only_columns(
            # On SQLite the stored text, parsed below by the faster fromisoformat and
            # orjson; other drivers return a datetime and a dict either way.
            type_coerce(Email.internaldate, String),
            Credential.login, Email.from_name, Email.from_address, Email.tracked_address,
            Email.recipient, Email.subject, Email.counted, Rule.name, Email.attribution,
            Email.channel, Email.utm_source, type_coerce(Email.source, String),
            Email.visit_id, Email.id, Email.uncertain,
            maintain_column_froms=False,
        )
        .select_from(Email)
        .outerjoin(Mailbox, Mailbox.id == Email.mailbox_id)
        .outerjoin(Credential, Credential.id == Mailbox.credential_id)
        .outerjoin(Rule, Rule.id == Email.rule_id)
        .order_by(None)
        .order_by(Email.internaldate.desc(), Email.id.desc())
        .execution_options(yield_per=YIELD_PER)
    )


def _execute(query):
    """Run the export's query: errors surface here, before any byte is sent.

    On a connection of its own, not the session's: the request's teardown ends the
    session's transaction when the view returns, before the body is read, and on
    PostgreSQL the rows are read from a server-side cursor that lives in it.
    Returns (connection, result); _download closes the connection.
    """
    connection = db.engine.connect()
    try:
        return connection, connection.execute(_select(query))
    except BaseException:
        connection.close()
        raise


def _source(value):
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


class _LocalTime:
    """Naive UTC -> naive local time of tz, remembering the offset of the last hour.

    Rows come in time order, so most share the hour of the row before; converting
    each through astimezone cost more than the rest of a CSV row. An hour in which
    the offset changes (a daylight saving switch) is converted row by row.
    """

    def __init__(self, tz):
        self.tz, self.hour, self.offset = tz, None, None

    def __call__(self, at, hour):
        if hour != self.hour:
            start = at.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
            first = start.astimezone(self.tz).utcoffset()
            last = (start + timedelta(hours=1, microseconds=-1)).astimezone(self.tz).utcoffset()
            self.hour, self.offset = hour, first if first == last else None
        if self.offset is None:
            return at.replace(tzinfo=UTC).astimezone(self.tz).replace(tzinfo=None)
        return at + self.offset


def _records(result, tz, labels, as_text=False):
    """Each email as a list of cells: the local time (naive datetime, or text), text, ids."""
    status, kinds, channels = labels["status"], labels["kind"], labels["channel"]
    not_tracked = kinds[None]
    fromisoformat = datetime.fromisoformat
    local_time = _LocalTime(tz)
    blanks = ("",) * len(SOURCE_FIELDS)
    for partition in result.partitions():
        for (at, login, from_name, from_address, tracked_address, recipient, subject, counted,
             rule_name, kind, channel, utm_source, source, visit_id, email_id,
             uncertain) in partition:
            if at is None:
                local = "" if as_text else None
            else:
                if isinstance(at, str):
                    hour, at = at[:13], fromisoformat(at)
                else:
                    hour = at.replace(minute=0, second=0, microsecond=0)
                local = local_time(at, hour)
                if as_text:
                    local = local.isoformat(" ", "seconds")
            source = _source(source)
            if utm_source is None:
                utm_source = source.get("utm_source", "")
            text = clean_cells([
                login or "", from_name or "", from_address or "", tracked_address or "",
                recipient or "", subject or "", status[bool(counted)], rule_name or "",
                not_tracked if kind is None else kinds.get(kind, kind)
                + (f" ({labels['spam' if uncertain == BOT_VISIT else 'uncertain']})"
                   if uncertain else ""),
                channels.get(channel, channel) or "", utm_source,
                *map(source.get, SOURCE_FIELDS, blanks),
            ])
            yield [local, *text[:17], _number(visit_id), text[17], text[18], _number(email_id)]


def _filename(tz, extension):
    return f"emails-{periods.today(tz).isoformat()}.{extension}"


def _download(body, mimetype, filename, connection):
    response = Response(body, mimetype=mimetype)
    # Also when the body is never read (the client left before the first byte).
    response.call_on_close(connection.close)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------ CSV


def csv_response(query, tz):
    """The filtered emails as a streamed CSV download (UTF-8 with BOM)."""
    headers = [name for name, _width in _columns(tz)]
    labels = _labels()
    connection, result = _execute(query)

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(headers)
        try:
            for record in _records(result, tz, labels, as_text=True):
                writer.writerow(record)
                if buffer.tell() >= CSV_CHUNK:
                    yield buffer.getvalue().encode("utf-8", "replace")
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue().encode("utf-8", "replace")
        finally:
            result.close()
            connection.close()

    return _download(stream_with_context(generate()), "text/csv",
                     _filename(tz, "csv"), connection)


# ------------------------------------------------------------------ XLSX


def xlsx_response(query, tz):
    """The filtered emails as an Excel workbook, built in a temporary file and streamed."""
    columns = _columns(tz)
    labels = _labels()
    limit_note = _("Excel holds at most %(n)s rows: the export stops here. "
                   "The CSV export has every email.", n=f"{XLSX_MAX_ROWS:,}")
    sheet_name = _("Emails")[:31]
    connection, result = _execute(query)

    def generate():
        # Everything is created inside the generator, so that its `finally` removes it:
        # a generator that never starts (the client left) never created anything.
        workdir = tempfile.mkdtemp(prefix="export-")
        try:
            path = os.path.join(workdir, "emails.xlsx")
            _write_xlsx(path, workdir, sheet_name, columns, _records(result, tz, labels),
                        limit_note)
            result.close()
            with open(path, "rb") as file:
                while chunk := file.read(FILE_CHUNK):
                    yield chunk
        finally:
            result.close()
            connection.close()
            shutil.rmtree(workdir, ignore_errors=True)

    return _download(stream_with_context(generate()),
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     _filename(tz, "xlsx"), connection)


def _write_xlsx(path, workdir, sheet_name, columns, records, limit_note):
    import xlsxwriter

    # use_zip64: a sheet over 2 GB (long subjects and URLs on a million rows) would
    # otherwise fail when the file is closed; smaller files are written as before.
    workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": workdir,
                                          "in_memory": False, "use_zip64": True})
    try:
        sheet = workbook.add_worksheet(sheet_name)
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        for index, (_name, width) in enumerate(columns):
            sheet.set_column(index, index, width, when if index == 0 else None)
        # constant_memory writes rows in order: the header first, then each email.
        for index, (name, _width) in enumerate(columns):
            sheet.write_string(0, index, name, bold)
        sheet.freeze_panes(1, 0)
        last = XLSX_MAX_ROWS - 1
        row = 1
        write_string, write_number = sheet.write_string, sheet.write_number
        write_datetime = sheet.write_datetime
        records = iter(records)
        for record in records:
            if row == last and next(records, None) is not None:
                # One more email than fits: the last row says so instead.
                sheet.write_string(row, 0, limit_note, bold)
                break
            for column, value in enumerate(record):
                if value is None or value == "":
                    continue
                if isinstance(value, str):
                    write_string(row, column, value)
                elif isinstance(value, int):
                    write_number(row, column, value)
                else:
                    write_datetime(row, column, value, when)
            if row == last:
                break
            row += 1
        sheet.autofilter(0, 0, max(row - 1, 0) if row < last else last, len(columns) - 1)
    finally:
        workbook.close()
