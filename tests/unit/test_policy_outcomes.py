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
from service.policy.outcomes import action_of
from service.vocabulary import Action, Bucket, OutcomeKind, bucket, worst

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
    mfa_phone_country_code: str | None = None,
    **contact: object,
) -> Outcome:
    facts = UserFacts(
        user_id="u-1",
        email=email,
        phone=phone,
        phone_country_code=contact.pop("phone_country_code", "+86"),  # type: ignore[arg-type]
        departments=(department,),
        groups=(),
        **contact,  # type: ignore[arg-type]
    )
    evaluation = evaluate(Policy(rules=(the_rule,)), facts, today=TODAY)
    return rule_outcomes(evaluation, facts, enabled, mfa_phone, mfa_email, mfa_phone_country_code)[the_rule.name]


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
    outcome = outcome_of(
        rule(factors=("SMS", "EMAIL")), phone=None, email=None, mfa_phone="+8613900000000", mfa_email="m@x.io"
    )
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
    facts = UserFacts(user_id="u-1", phone="+8613900000000", departments=(FINANCE,), groups=())
    outcomes = rule_outcomes(evaluate(policy, facts, today=TODAY), facts, set())
    assert list(outcomes) == ["b", "a"]
    assert [(o.mode, o.label) for o in outcomes.values()] == [("audit", "enforce [OTP]"), ("enforce", "enforce [SMS]")]
    assert factors_to_add(outcomes.values()) == ("SMS",)
    assert factors_to_add(outcomes.values(), "audit") == ("OTP",)


def test_forced_audit_outcomes_are_all_audit():
    """With force_audit every outcome is in audit mode, so nothing is to be written."""
    policy = Policy(rules=(rule(),))
    facts = UserFacts(user_id="u-1", phone="+8613900000000", departments=(FINANCE,), groups=())
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


def test_an_unverified_phone_is_not_a_second_factor_and_the_fallback_applies():
    """GenAuth says phoneVerified false: SMS cannot be given; the fallback stands in, or the rule is
    unsatisfiable with the reason."""
    falls_back = outcome_of(rule(fallback=("EMAIL",)), phone_verified=False)
    assert falls_back.label == "enforce [EMAIL] (fallback for SMS)"
    stuck = outcome_of(rule(), phone_verified=False)
    assert stuck.label == "unsatisfiable [SMS]" and stuck.unsatisfiable == {"SMS": "phone not verified"}


def test_an_mfa_phone_that_is_the_unverified_profile_phone_does_not_count():
    """Copying the unverified profile phone into the MFA data does not verify it."""
    outcome = outcome_of(rule(), phone_verified=False, mfa_phone="13800138000", mfa_phone_country_code="+86")
    assert outcome.unsatisfiable == {"SMS": "phone not verified"}


def test_an_mfa_phone_of_its_own_needs_only_to_be_well_formed():
    """A different MFA phone was bound on purpose: its form is checked, the profile's flag is not its own."""
    assert outcome_of(rule(), phone_verified=False, mfa_phone="+8613900000009").label == "enforce [SMS]"
    garbage = outcome_of(rule(), phone=None, mfa_phone="12")
    assert garbage.unsatisfiable["SMS"].startswith("the MFA phone stored in GenAuth is not well-formed")


@pytest.mark.parametrize(
    ("contact", "why"),
    [
        ({"phone": "13800138000", "phone_country_code": None}, "phone number is not well-formed"),
        ({"phone": "+86 138 0013 8000", "phone_country_code": None}, "phone number is not well-formed"),
        ({"phone": "x" * 11}, "phone number is not well-formed"),
        ({"phone": "13800138000", "phone_country_code": "86a"}, "phone number is not well-formed"),
    ],
)
def test_a_phone_without_country_code_or_e164_form_is_not_a_second_factor(contact, why):
    """A phone is well-formed in E.164 (+8613800138000) or as national digits with a country code."""
    outcome = outcome_of(rule(), **contact)
    assert outcome.unsatisfiable["SMS"].startswith(why)
    assert outcome_of(rule(), phone="+8613800138000", phone_country_code=None).label == "enforce [SMS]"


def test_unverified_or_domainless_addresses_are_not_a_second_factor():
    """EMAIL needs emailVerified not false and an address with a domain."""
    assert outcome_of(rule(factors=("EMAIL",)), email_verified=False).unsatisfiable == {
        "EMAIL": "email address not verified"
    }
    assert (
        outcome_of(rule(factors=("EMAIL",)), email="root@localhost")
        .unsatisfiable["EMAIL"]
        .startswith("email address is not well-formed")
    )


# --- the vocabulary: where a decision counts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "action", "mode", "rule_mode", "status", "expected"),
    [
        ("enforce [SMS]", "enforced", "enforce", "enforce", "Activated", Bucket.ENFORCED),
        ("enforce [SMS]", "enforced", "enforce", "audit", "Activated", Bucket.WOULD_ENFORCE),
        ("enforce [SMS]", "would-enforce", "audit", "enforce", "Activated", Bucket.WOULD_ENFORCE),
        ("compliant (fallback for SMS)", "none", "enforce", "enforce", "Activated", Bucket.COMPLIANT),
        ("unsatisfiable [SMS]", "unsatisfiable", "enforce", "enforce", None, Bucket.UNSATISFIABLE),
        ("exempt", "exempt", "enforce", "enforce", None, Bucket.EXEMPT),
        ("compliant", "none", "enforce", "enforce", "Suspended", Bucket.INACTIVE),
        ("compliant", "removed", "enforce", "enforce", "Archived", Bucket.REMOVED),
        ("enforce [SMS]", "unknown", "enforce", "enforce", None, Bucket.FAILED),
        ("not-matched", "removed", "enforce", "enforce", None, Bucket.NOT_MATCHED),
    ],
)
def test_bucket_says_where_a_rule_outcome_counts(label, action, mode, rule_mode, status, expected):
    assert bucket(label, action=action, mode=mode, rule_mode=rule_mode, status=status) is expected


def test_worst_bucket_and_action_of_outcomes():
    assert worst([Bucket.EXEMPT, Bucket.COMPLIANT]) is Bucket.COMPLIANT
    assert worst([Bucket.EXEMPT]) is Bucket.EXEMPT and worst([]) is Bucket.NOT_MATCHED
    exempt = Outcome(rule="a", kind=OutcomeKind.EXEMPT)
    unmatched = Outcome(rule="b", kind=OutcomeKind.NOT_MATCHED)
    assert action_of([exempt, unmatched], wrote=False, would=False) is Action.EXEMPT
    assert (
        action_of([exempt, Outcome(rule="c", kind=OutcomeKind.COMPLIANT)], wrote=False, would=True)
        is Action.WOULD_ENFORCE
    )
    assert (
        action_of([Outcome(rule="d", kind=OutcomeKind.UNSATISFIABLE)], wrote=True, would=False) is Action.UNSATISFIABLE
    )
