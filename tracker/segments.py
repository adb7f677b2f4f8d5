"""Visitor segments: conditions on a visit, matching, and the winning rule per block (pure).

A visit is described by its *facts*: a mapping of FIELDS to text (missing means empty).
Rules are duck-typed so that ORM rows and plain objects both work: they need
`id`, `priority`, `active`, `match_all`, `conditions` (objects with `field`,
`operator` and `value`) and, for `winning_rules`, `block_ids`.

Text comparisons ignore case (nobody expects `utm_source=Google` and `google` to
differ); a regular expression ignores case too unless it says `(?-i:...)`.
"""

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tracker.channels import CHANNELS, derive_channel, referrer_host
from tracker.domains import DomainError, normalize_domain

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
FIELDS = UTM_FIELDS + ("referrer_domain", "channel", "landing_url")
OPERATORS = ("equals", "not_equals", "contains", "starts_with", "regex", "empty", "not_empty")
VALUELESS = frozenset({"empty", "not_empty"})

MAX_VALUE = 500
MAX_PATTERN = 200
# Facts are cut to this length before matching, which bounds the work of any regex.
MAX_FACT = 2000



class ConditionError(ValueError):
    """A condition that cannot be saved; `reason` names the problem for a translated message.

    Reasons: field, operator, value_required, value_too_long, pattern_too_long,
    pattern_invalid, pattern_nested, channel, domain.
    """

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Condition:
    """One condition of a segment: `field operator value`."""

    field: str
    operator: str
    value: str = ""


def _class_end(pattern, start):
    """The index just after the character class that opens at `start`."""
    i = start + 1
    if pattern[i:i + 1] == "^":
        i += 1
    if pattern[i:i + 1] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return len(pattern)


def _explosive(pattern):
    """True for a repeated group that contains a repetition or an alternative.

    (a+)+, (\\w*)* and (a|aa)+ backtrack exponentially on some inputs; Python's re
    has no timeout, so such patterns are refused on save (a conservative check).
    """
    stack = [False]  # per open group: whether it contains a repetition or "|"
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
            continue
        if char == "(":
            stack.append(False)
            i += 1
            if pattern[i:i + 1] == "?":
                i += 1  # (?:, (?P<name>, (?=, (?i): syntax, not a repetition
            continue
        if char == ")":
            inner = stack.pop() if len(stack) > 1 else False
            follower = pattern[i + 1:i + 2]
            if inner and follower and follower in "*+{":
                return True
            if inner or (follower and follower in "*+?{"):
                stack[-1] = True
        elif char in "*+?{|":
            stack[-1] = True
        i += 1
    return False


@functools.lru_cache(maxsize=512)
def _compiled(pattern):
    return re.compile(pattern, re.IGNORECASE)


def compile_pattern(pattern):
    """Compile a user's regular expression, refusing long, broken or explosive ones."""
    if len(pattern) > MAX_PATTERN:
        raise ConditionError("pattern_too_long")
    if _explosive(pattern):
        raise ConditionError("pattern_nested")
    try:
        return _compiled(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ConditionError("pattern_invalid", getattr(exc, "msg", str(exc))) from None


def _strip_www(domain):
    return domain[4:] if domain.startswith("www.") else domain


def _domain_value(value):
    try:
        domain = normalize_domain(value)
    except DomainError:
        raise ConditionError("domain") from None
    return _strip_www(domain)


def check_condition(field, operator, value=""):
    """Validate and normalise a condition typed by a user; raises ConditionError."""
    if field not in FIELDS:
        raise ConditionError("field")
    if operator not in OPERATORS:
        raise ConditionError("operator")
    value = (value or "").strip()
    if operator in VALUELESS:
        return Condition(field, operator, "")
    if not value:
        raise ConditionError("value_required")
    if len(value) > MAX_VALUE:
        raise ConditionError("value_too_long")
    if operator == "regex":
        compile_pattern(value)
    elif field == "channel" and operator in ("equals", "not_equals"):
        value = value.casefold()
        if value not in CHANNELS:
            raise ConditionError("channel")
    elif field == "referrer_domain" and operator in ("equals", "not_equals"):
        value = _domain_value(value)
    return Condition(field, operator, value)


def visit_facts(landing_url=None, referrer=None, utm=None, channel=None, own_domains=()):
    """The facts of a visit for matching; the channel is derived unless given."""
    utm = utm or {}
    facts = {name: (utm.get(name) or "").strip()[:MAX_FACT] for name in UTM_FIELDS}
    facts["landing_url"] = (landing_url or "").strip()[:MAX_FACT]
    facts["referrer_domain"] = referrer_host(referrer)
    facts["channel"] = channel or derive_channel(
        utm_source=facts["utm_source"], utm_medium=facts["utm_medium"], referrer=referrer,
        landing_url=landing_url, own_domains=own_domains,
    )
    return facts


def _fact(facts, field):
    value = facts.get(field) if isinstance(facts, Mapping) else getattr(facts, field, None)
    return str(value or "").strip()[:MAX_FACT]


def _equals(field, fact, value):
    if field == "referrer_domain":
        fact, value = (_strip_www(text.casefold()) for text in (fact, value))
        # A domain includes its subdomains, as for sites.
        return fact == value or fact.endswith("." + value)
    return fact.casefold() == value.casefold()


def condition_matches(condition, facts):
    """Whether one condition holds for the visit's facts."""
    fact = _fact(facts, condition.field)
    operator, value = condition.operator, (condition.value or "").strip()
    if operator == "empty":
        return not fact
    if operator == "not_empty":
        return bool(fact)
    if operator == "equals":
        return _equals(condition.field, fact, value)
    if operator == "not_equals":
        return not _equals(condition.field, fact, value)
    if operator == "contains":
        return value.casefold() in fact.casefold()
    if operator == "starts_with":
        return fact.casefold().startswith(value.casefold())
    if operator == "regex":
        try:
            return compile_pattern(value).search(fact) is not None
        except ConditionError:
            # A pattern that slipped past validation never matches rather than failing a visit.
            return False
    return False


def segment_matches(conditions, facts, match_all=False):
    """All visitors, or every condition (joined by AND) holds."""
    if match_all:
        return True
    conditions = list(conditions)
    # A segment of conditions with none of them selects nobody: safer than everybody.
    return bool(conditions) and all(condition_matches(c, facts) for c in conditions)


def rule_matches(rule, facts):
    """Whether the rule's segment selects this visit (activity is not considered)."""
    return segment_matches(rule.conditions, facts, match_all=rule.match_all)


def ordered(rules):
    """Rules in priority order: lower priority first, then the older (lower id)."""
    return sorted(rules, key=lambda rule: (rule.priority, rule.id))


def winning_rule(rules, facts):
    """The first active rule, by priority, whose segment matches; None if none does."""
    for rule in ordered(rules):
        if rule.active and rule_matches(rule, facts):
            return rule
    return None


def winning_rules(rules, facts):
    """For every block that some rule serves, the winning rule for this visit.

    Returns {block_id: rule}; blocks whose rules all miss are absent.
    """
    winners = {}
    for rule in ordered(rules):
        if not rule.active:
            continue
        pending = [b for b in rule.block_ids if b not in winners]
        if pending and rule_matches(rule, facts):
            for block_id in pending:
                winners[block_id] = rule
    return winners
