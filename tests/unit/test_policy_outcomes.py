"""Per-rule outcomes: what each rule would do to a user given their current MFA factors and contacts,
including fallback substitution and unsatisfiable factors."""

from __future__ import annotations

from datetime import date

import pytest

from service.policy import (
    Department,
    Exemption,
    Match,
    Outcome,
    Policy,
    Rule,
    UserFacts,
    contact_problem,
    evaluate,
    factors_to_add,
    rule_outcomes,
)

TODAY = date(2026, 12, 1)
FINANCE = Department(department_id="dep-fin", code="finance", name="Finance")
SALES = Department(department_id="dep-sales", code="sales", name="Sales")


def rule(
    name: str = "r",
    factors: tuple[str, ...] = ("SMS",),
    fallback: tuple[str, ...] = (),
    mode: str = "enforce",
    exceptions: tuple[Exemption, ...] = (),
) -> Rule:
    return Rule(
        name=name,
        description="",
        mode=mode,
        match=Match(departments=("finance",)),
        require_mfa=factors,
        fallback=fallback,
        exceptions=exceptions,
    )


def outcome_of(
    the_rule: Rule,
    *,
    phone: str | None = "13800138000",
    email: str | None = "a@acme.example",
    department: Department = FINANCE,
    enabled: tuple[str, ...] = (),
    mfa_phone: str | None = None,
    mfa_email: str | None = None,
) -> Outcome:
    facts = UserFacts(user_id="u-1", email=email, phone=phone, departments=(department,), groups=())
    evaluation = evaluate(Policy(rules=(the_rule,)), facts, today=TODAY)
    return rule_outcomes(evaluation, facts, enabled, mfa_phone, mfa_email)[the_rule.name]


def test_unmatched_rule_is_not_matched():
    """A rule that does not match the user has the outcome not-matched."""
    assert outcome_of(rule(), department=SALES).label == "not-matched"


def test_exempt_rule_carries_its_exemption():
    """An exempt rule is `exempt`, adds nothing and keeps the exemption text for the record."""
    outcome = outcome_of(rule(exceptions=(Exemption(reason="pilot", users=("u-1",)),)))
    assert (outcome.label, outcome.add) == ("exempt", ())
    assert outcome.details == ("exempt: pilot (user u-1)",)


def test_missing_satisfiable_factors_are_enforced():
    """Required factors that are missing and possible are listed in factor order."""
    outcome = outcome_of(rule(factors=("OTP", "SMS")), enabled=("EMAIL",))
    assert (outcome.kind, outcome.add, outcome.label) == ("enforce", ("SMS", "OTP"), "enforce [SMS, OTP]")


def test_all_factors_enabled_is_compliant():
    """With every required factor already enabled the rule is compliant (contacts no longer matter)."""
    assert outcome_of(rule(factors=("SMS", "OTP")), phone=None, enabled=("sms", "OTP")).label == "compliant"


@pytest.mark.parametrize(
    ("factor", "contacts", "problem"),
    [
        ("SMS", {"phone": None}, "no phone number on record"),
        ("SMS", {"phone": "  "}, "no phone number on record"),
        ("EMAIL", {"email": None}, "no email address on record"),
    ],
)
def test_factor_without_its_contact_and_no_fallback_is_unsatisfiable(factor, contacts, problem):
    """SMS needs a phone, EMAIL an address; without one and without a fallback the rule is unsatisfiable."""
    outcome = outcome_of(rule(factors=(factor,)), **contacts)
    assert (outcome.label, outcome.unsatisfiable) == (f"unsatisfiable [{factor}]", {factor: problem})


def test_mfa_contacts_count_as_well_as_profile_ones():
    """A stored MFA phone or email makes SMS or EMAIL possible without a profile contact."""
    outcome = outcome_of(rule(factors=("SMS", "EMAIL")), phone=None, email=None, mfa_phone="139", mfa_email="m@x.io")
    assert outcome.label == "enforce [SMS, EMAIL]"


def test_unsatisfiable_rule_still_lists_what_could_be_enabled():
    """An unsatisfiable rule reports the impossible factor and still lists the possible ones to add."""
    outcome = outcome_of(rule(factors=("SMS", "OTP")), phone=None)
    assert (outcome.kind, outcome.add) == ("unsatisfiable", ("OTP",))
    assert outcome.details == ("SMS: no phone number on record",)


def test_first_possible_fallback_stands_in():
    """Without a phone, the first fallback the user can be given replaces SMS."""
    outcome = outcome_of(rule(fallback=("EMAIL", "OTP")), phone=None)
    assert outcome.label == "enforce [EMAIL] (fallback for SMS)"
    assert outcome.fallbacks == {"SMS": "EMAIL"}
    assert outcome.details == ("EMAIL stands in for SMS",)


def test_impossible_fallbacks_are_skipped_in_order():
    """A fallback the user cannot have either is skipped for the next one."""
    outcome = outcome_of(rule(fallback=("EMAIL", "OTP")), phone=None, email=None)
    assert outcome.label == "enforce [OTP] (fallback for SMS)"


def test_an_enabled_fallback_is_preferred_and_needs_no_change():
    """If any fallback is already enabled it stands in, even when an earlier one would be possible."""
    outcome = outcome_of(rule(fallback=("EMAIL", "OTP")), phone=None, enabled=("OTP",))
    assert (outcome.label, outcome.add) == ("compliant (fallback for SMS)", ())


def test_fallback_is_not_used_while_the_required_factor_is_possible():
    """A fallback only stands in for a factor the user cannot be given."""
    assert outcome_of(rule(fallback=("EMAIL",)), enabled=("EMAIL",)).label == "enforce [SMS]"


def test_no_possible_fallback_is_unsatisfiable_naming_each_fallback():
    """When every fallback is impossible too, the reason lists why for each one."""
    outcome = outcome_of(rule(fallback=("EMAIL",)), phone=None, email=None)
    assert outcome.label == "unsatisfiable [SMS]"
    assert outcome.unsatisfiable == {"SMS": "no phone number on record; fallback EMAIL: no email address on record"}


def test_outcomes_cover_every_rule_in_file_order_with_their_mode():
    """rule_outcomes returns one outcome per rule, in order, each with the mode it counted in."""
    policy = Policy(rules=(rule("b", mode="audit", factors=("OTP",)), rule("a")))
    facts = UserFacts(user_id="u-1", phone="139", departments=(FINANCE,), groups=())
    outcomes = rule_outcomes(evaluate(policy, facts, today=TODAY), facts, set())
    assert list(outcomes) == ["b", "a"]
    assert [(o.mode, o.label) for o in outcomes.values()] == [("audit", "enforce [OTP]"), ("enforce", "enforce [SMS]")]
    assert factors_to_add(outcomes.values()) == ("SMS",)
    assert factors_to_add(outcomes.values(), "audit") == ("OTP",)


def test_forced_audit_outcomes_are_all_audit():
    """With force_audit every outcome is in audit mode, so nothing is to be written."""
    policy = Policy(rules=(rule(),))
    facts = UserFacts(user_id="u-1", phone="139", departments=(FINANCE,), groups=())
    outcomes = rule_outcomes(evaluate(policy, facts, today=TODAY, force_audit=True), facts, ())
    assert factors_to_add(outcomes.values()) == ()
    assert factors_to_add(outcomes.values(), "audit") == ("SMS",)


def test_contact_problem_knows_which_factors_need_contacts():
    """Only SMS and EMAIL need a contact; OTP and FACE are always possible."""
    nobody = UserFacts(user_id="u-1")
    assert [contact_problem(f, nobody) for f in ("SMS", "EMAIL", "OTP", "FACE")] == [
        "no phone number on record",
        "no email address on record",
        None,
        None,
    ]
