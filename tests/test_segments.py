"""Segments: every field and operator, validation, and the winning rule per block."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.segments import (
    FIELDS,
    MAX_PATTERN,
    OPERATORS,
    Condition,
    ConditionError,
    check_condition,
    compile_pattern,
    condition_matches,
    segment_matches,
    visit_facts,
    winning_rule,
    winning_rules,
)


@dataclass
class FakeRule:
    id: int
    priority: int
    active: bool = True
    match_all: bool = True
    conditions: list = field(default_factory=list)
    block_ids: list = field(default_factory=lambda: [1])


VISIT = {
    "utm_source": "Google",
    "utm_medium": "cpc",
    "utm_campaign": "Summer_Sale-2024",
    "utm_content": "banner A",
    "utm_term": "купить цветы",
    "referrer_domain": "www.google.com",
    "channel": "paid",
    "landing_url": "https://shop.example/Contacts?utm_source=google",
}


def holds(field_, operator, value="", facts=VISIT):
    return condition_matches(Condition(field_, operator, value), facts)


@pytest.mark.parametrize("field_", FIELDS)
def test_every_field_supports_every_operator(field_):
    value = VISIT[field_]
    assert holds(field_, "equals", value)
    assert not holds(field_, "equals", value + "x")
    assert holds(field_, "not_equals", value + "x")
    assert not holds(field_, "not_equals", value)
    assert holds(field_, "contains", value[1:4])
    assert not holds(field_, "contains", "zzz-nowhere")
    assert holds(field_, "starts_with", value[:3])
    assert not holds(field_, "starts_with", value[1:4] + "zzz")
    assert holds(field_, "regex", "^" + value[:2])
    assert not holds(field_, "regex", "^zzz")
    assert holds(field_, "not_empty")
    assert not holds(field_, "empty")


@pytest.mark.parametrize(
    ("field_", "operator", "value"),
    [
        ("utm_source", "equals", "google"),
        ("utm_source", "equals", "GOOGLE"),
        ("utm_campaign", "contains", "summer_sale"),
        ("utm_campaign", "starts_with", "SUMMER"),
        ("utm_term", "contains", "КУПИТЬ"),
        ("utm_content", "regex", r"^BANNER\s+a$"),
        ("channel", "equals", "Paid"),
        ("referrer_domain", "equals", "GOOGLE.com"),
        ("landing_url", "contains", "/contacts"),
    ],
)
def test_text_comparisons_ignore_case(field_, operator, value):
    assert holds(field_, operator, value)


def test_regex_can_ask_for_case():
    assert not holds("utm_source", "regex", "(?-i:google)")
    assert holds("utm_source", "regex", "(?-i:Google)")


@pytest.mark.parametrize("facts", [{}, {"utm_source": None}, {"utm_source": ""},
                                   {"utm_source": "   "}])
def test_empty_and_missing_values(facts):
    assert holds("utm_source", "empty", facts=facts)
    assert not holds("utm_source", "not_empty", facts=facts)
    assert not holds("utm_source", "equals", "google", facts=facts)
    assert holds("utm_source", "not_equals", "google", facts=facts)
    assert not holds("utm_source", "contains", "g", facts=facts)
    assert not holds("utm_source", "starts_with", "g", facts=facts)
    assert not holds("utm_source", "regex", "g", facts=facts)
    assert holds("utm_source", "regex", "^$", facts=facts)


def test_referrer_domain_includes_subdomains_and_ignores_www():
    facts = {"referrer_domain": "m.vk.com"}
    assert holds("referrer_domain", "equals", "vk.com", facts=facts)
    assert not holds("referrer_domain", "equals", "ok.com", facts=facts)
    assert not holds("referrer_domain", "equals", "k.com", facts=facts)
    assert holds("referrer_domain", "equals", "google.com", facts={"referrer_domain": "www.google.com"})
    assert holds("referrer_domain", "not_equals", "vk.com", facts={"referrer_domain": "notvk.com"})


def test_facts_are_read_from_objects_too():
    class Visit:
        utm_source = "yandex"

    assert condition_matches(Condition("utm_source", "equals", "Yandex"), Visit())
    assert condition_matches(Condition("utm_medium", "empty"), Visit())


def test_unknown_operator_never_matches():
    assert not holds("utm_source", "sounds_like", "gogle")


def test_a_bad_stored_pattern_never_matches_and_never_raises():
    assert not holds("utm_source", "regex", "(unclosed")
    assert not holds("utm_source", "regex", "(a+)+$")


def test_segment_joins_conditions_with_and():
    google = Condition("utm_source", "equals", "google")
    cpc = Condition("utm_medium", "equals", "cpc")
    email = Condition("utm_medium", "equals", "email")
    assert segment_matches([google, cpc], VISIT)
    assert not segment_matches([google, email], VISIT)
    assert segment_matches([], VISIT, match_all=True)
    assert segment_matches([email], VISIT, match_all=True)
    assert not segment_matches([], VISIT)


# --- validation on save -------------------------------------------------------


def test_check_condition_normalises():
    assert check_condition("channel", "equals", " Paid ") == Condition("channel", "equals", "paid")
    assert check_condition("referrer_domain", "equals", "https://WWW.Google.com/x") == Condition(
        "referrer_domain", "equals", "google.com")
    assert check_condition("referrer_domain", "equals", "яндекс.рф").value == "xn--d1acpjx3f.xn--p1ai"
    assert check_condition("utm_source", "empty", "ignored") == Condition("utm_source", "empty", "")
    assert check_condition("landing_url", "regex", r"/contacts?$").value == r"/contacts?$"


@pytest.mark.parametrize(
    ("field_", "operator", "value", "reason"),
    [
        ("utm_nothing", "equals", "x", "field"),
        ("", "equals", "x", "field"),
        ("utm_source", "like", "x", "operator"),
        ("utm_source", "equals", "", "value_required"),
        ("utm_source", "contains", "   ", "value_required"),
        ("utm_source", "equals", "x" * 501, "value_too_long"),
        ("utm_source", "regex", "(unclosed", "pattern_invalid"),
        ("utm_source", "regex", "[z-a]", "pattern_invalid"),
        ("utm_source", "regex", "*", "pattern_invalid"),
        ("utm_source", "regex", "a" * (MAX_PATTERN + 1), "pattern_too_long"),
        ("utm_source", "regex", "(a+)+$", "pattern_nested"),
        ("utm_source", "regex", r"(\w*)*x", "pattern_nested"),
        ("utm_source", "regex", "(a|aa)+b", "pattern_nested"),
        ("utm_source", "regex", "((ab)+)*", "pattern_nested"),
        ("utm_source", "regex", "(?:x{2,})+", "pattern_nested"),
        ("channel", "equals", "tv", "channel"),
        ("channel", "not_equals", "tv", "channel"),
        ("referrer_domain", "equals", "not a domain!", "domain"),
    ],
)
def test_check_condition_refuses(field_, operator, value, reason):
    with pytest.raises(ConditionError) as caught:
        check_condition(field_, operator, value)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "pattern",
    [r"^(google|yandex)$", r"[(+*]+", r"\(a+\)+", r"(ab)?c+", r"^/catalog/\d+$",
     r"(?P<x>a)b+", r"(?i)Sale", "(a)(b)+"],
)
def test_safe_patterns_are_accepted(pattern):
    compile_pattern(pattern)


def test_channel_contains_is_free_text():
    assert check_condition("channel", "contains", "pai").value == "pai"


def test_visit_facts_derive_channel_and_domain():
    facts = visit_facts(
        landing_url="https://shop.example/?utm_source=vk",
        referrer="https://m.vk.com/away.php",
        utm={"utm_source": " vk ", "utm_campaign": "x" * 5000},
        own_domains=["shop.example"],
    )
    assert facts["utm_source"] == "vk"
    assert len(facts["utm_campaign"]) == 2000
    assert facts["referrer_domain"] == "m.vk.com"
    assert facts["channel"] == "social"
    assert facts["utm_medium"] == ""
    assert visit_facts(channel="email")["channel"] == "email"


# --- the winning rule ---------------------------------------------------------

GOOGLE = [Condition("utm_source", "equals", "google")]
EMAIL = [Condition("channel", "equals", "email")]


def test_first_active_matching_rule_by_priority_wins():
    specific = FakeRule(id=3, priority=1, match_all=False, conditions=GOOGLE)
    everyone = FakeRule(id=1, priority=2)
    assert winning_rule([everyone, specific], VISIT) is specific
    assert winning_rule([everyone, specific], {"utm_source": "bing"}) is everyone


def test_inactive_rules_are_skipped():
    off = FakeRule(id=1, priority=1, active=False)
    on = FakeRule(id=2, priority=2, match_all=False, conditions=GOOGLE)
    assert winning_rule([off, on], VISIT) is on
    assert winning_rule([off, on], {}) is None


def test_equal_priorities_fall_back_to_the_older_rule():
    newer, older = FakeRule(id=9, priority=5), FakeRule(id=4, priority=5)
    assert winning_rule([newer, older], VISIT) is older


def test_winner_per_block():
    a = FakeRule(id=1, priority=1, match_all=False, conditions=EMAIL, block_ids=[10, 20])
    b = FakeRule(id=2, priority=2, block_ids=[20])
    c = FakeRule(id=3, priority=3, block_ids=[10, 30])
    d = FakeRule(id=4, priority=4, block_ids=[40], active=False)
    assert winning_rules([d, c, b, a], VISIT) == {20: b, 10: c, 30: c}
    assert winning_rules([d, c, b, a], {"channel": "email"}) == {10: a, 20: a, 30: c}


rule_strategy = st.builds(
    FakeRule,
    id=st.integers(1, 10_000),
    priority=st.integers(-5, 5),
    active=st.booleans(),
    match_all=st.booleans(),
    conditions=st.lists(
        st.builds(Condition, st.sampled_from(["utm_source", "channel"]),
                  st.sampled_from(OPERATORS), st.sampled_from(["", "google", "paid", "o"])),
        max_size=2,
    ),
    block_ids=st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True),
)
facts_strategy = st.fixed_dictionaries({
    "utm_source": st.sampled_from(["", "google", "Google", "yandex", None]),
    "channel": st.sampled_from(["paid", "organic", "direct"]),
})


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(rule_strategy, max_size=8, unique_by=lambda r: r.id), facts=facts_strategy)
def test_winner_is_the_first_matching_active_rule_by_priority(rules, facts):
    def selects(rule):
        if rule.match_all:
            return True
        return bool(rule.conditions) and all(condition_matches(c, facts) for c in rule.conditions)

    by_priority = sorted(rules, key=lambda r: (r.priority, r.id))
    candidates = [r for r in by_priority if r.active and selects(r)]
    assert winning_rule(rules, facts) is (candidates[0] if candidates else None)
    winners = winning_rules(rules, facts)
    for block_id in {b for r in rules for b in r.block_ids}:
        serving = [r for r in candidates if block_id in r.block_ids]
        assert winners.get(block_id) is (serving[0] if serving else None)
