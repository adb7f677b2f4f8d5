"""A small `key:value` search language for lists (pure).

    type:dynamic active:yes block:"Contact email" summer sale

Known keys become filter terms; everything else is free text, one term per word
(or per "quoted phrase"), and every term must hold. Each list supplies one
filter function per key, and one for free text.
"""

import re
from dataclasses import dataclass

from sqlalchemy import or_

MAX_TERMS = 20

_TERM = re.compile(r'(?:(?P<key>[A-Za-z_]+):)?(?:"(?P<quoted>[^"]*)"?|(?P<word>[^\s"]+))')
_YES = {"yes", "y", "true", "1", "on", "да"}
_NO = {"no", "n", "false", "0", "off", "нет"}


class InvalidValue(ValueError):
    """A filter got a value it does not understand (such as type:banana)."""


@dataclass(frozen=True)
class Term:
    """One search term: key None is free text."""

    key: str | None
    value: str


def parse(text, keys):
    """Split a query into terms; `keys` are the filter names this list understands."""
    terms = []
    for match in _TERM.finditer(text or ""):
        key = (match.group("key") or "").lower()
        value = match.group("quoted")
        if value is None:
            value = match.group("word") or ""
        value = value.strip()
        if key and key not in keys:
            # Not a filter of this list: search for the text as typed.
            terms.append(Term(None, f"{match.group('key')}:{value}"))
        elif value:
            terms.append(Term(key or None, value))
        if len(terms) >= MAX_TERMS:
            break
    return terms


def parse_bool(value):
    """yes/no, true/false, on/off, 1/0 (and да/нет) as a bool; InvalidValue otherwise."""
    folded = value.strip().casefold()
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    raise InvalidValue(value)


def quote(value):
    """The value as it can be written after `key:`."""
    return f'"{value}"' if re.search(r'[\s"]', value) or not value else value


def like_pattern(text):
    """A LIKE pattern that finds text anywhere, with its own % and _ taken literally (escape \\)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def is_id(value):
    """True for a positive database integer written in ASCII digits (at most 18 of them)."""
    return value.isascii() and value.isdigit() and 0 < len(value) <= 18 and int(value) > 0


def name_or_id(column, id_column, value):
    """Filter: the name contains value, or value is the row's id."""
    condition = column.ilike(like_pattern(value), escape="\\")
    if is_id(value):
        condition = or_(condition, id_column == int(value))
    return condition


def apply(query, terms, filters, text_filter):
    """Narrow `query` by every term; returns (query, the terms whose value was invalid).

    filters: {key: f(query, value) -> query}, raising InvalidValue for a bad value;
    text_filter: f(query, text) -> query for free text.
    """
    invalid = []
    for term in terms:
        if term.key is None:
            query = text_filter(query, term.value)
            continue
        try:
            query = filters[term.key](query, term.value)
        except InvalidValue:
            invalid.append(term)
    return query, invalid
