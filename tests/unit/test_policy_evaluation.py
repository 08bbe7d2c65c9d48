"""Evaluating the policy for one user: which rules match, why, and which factors follow."""

from __future__ import annotations

from datetime import date

import pytest

from service.errors import ServiceError
from service.policy import (
    FACTORS,
    Department,
    Evaluation,
    Exemption,
    Fact,
    Match,
    MissingFactError,
    Policy,
    PolicyError,
    Role,
    Rule,
    UserFacts,
    ValueTest,
    evaluate,
    parse_policy,
)

FINANCE = Department(department_id="dep-fin", code="finance", name="Finance")
PAYROLL = Department(
    department_id="dep-pay",
    code="finance-payroll",
    name="Payroll",
    ancestor_ids=("dep-root", "dep-fin"),
    ancestor_codes=("acme", "finance"),
    ancestor_names=("ACME", "Finance"),
)
SALES = Department(department_id="dep-sales", code="sales", name="Sales", ancestor_ids=("dep-root",))
TODAY = date(2026, 12, 1)


# What a decision reads of an evaluation: each rule's result (applies, mode, factors, fallbacks).


def required(evaluation: Evaluation, mode: str = "enforce") -> tuple[str, ...]:
    """The factors of the applying rules in ``mode``, in FACTORS order."""
    wanted = {f for r in evaluation.results if r.applies and r.mode == mode for f in r.require_mfa}
    return tuple(factor for factor in FACTORS if factor in wanted)


def audit_only(evaluation: Evaluation) -> tuple[str, ...]:
    """The factors only applying audit-mode rules want."""
    return tuple(factor for factor in required(evaluation, "audit") if factor not in required(evaluation))


def fallbacks(evaluation: Evaluation) -> dict[str, tuple[str, ...]]:
    """Per factor wanted, the fallbacks the applying rules of its mode declare, in rule order without repeats."""
    declared: dict[str, tuple[str, ...]] = {}
    for mode, factors in (("enforce", required(evaluation)), ("audit", audit_only(evaluation))):
        for factor in factors:
            results = [r for r in evaluation.results if r.applies and r.mode == mode and factor in r.require_mfa]
            declared[factor] = tuple(dict.fromkeys(fb for r in results for fb in r.fallback))
    return declared


def rule_factors(evaluation: Evaluation) -> dict[str, tuple[str, ...]]:
    return {r.rule: r.require_mfa for r in evaluation.results if r.applies}


def matched_rules(evaluation: Evaluation) -> tuple[str, ...]:
    return tuple(r.rule for r in evaluation.results if r.matched)


def exempt_rules(evaluation: Evaluation) -> tuple[str, ...]:
    return tuple(r.rule for r in evaluation.results if r.exempt)


def make_rule(
    name: str = "r",
    *,
    departments: tuple[str, ...] = (),
    email_domains: tuple[str, ...] = (),
    factors: tuple[str, ...] = ("SMS",),
    mode: str = "enforce",
) -> Rule:
    match = Match(departments=departments, email_domains=email_domains)
    return Rule(name=name, description="", mode=mode, match=match, require_mfa=factors)


def make_user(*departments: Department, email: str | None = "alice@acme.example", fetched: bool = True) -> UserFacts:
    return UserFacts(user_id="u-1", email=email, departments=departments if fetched else None)


def evaluate_one(rule: Rule, user: UserFacts) -> Evaluation:
    return evaluate(Policy(rules=(rule,)), user, today=TODAY)


# --- departments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("selector", ["finance", "FINANCE", "Finance", "finance ", "dep-fin"])
def test_department_matches_by_code_name_or_id(selector):
    """A department selector matches the user's department by code or name (any case) or by id."""
    result = evaluate_one(make_rule(departments=(selector,)), make_user(FINANCE)).results[0]
    assert result.matched
    assert result.reasons == (f"department {selector}",)


def test_department_id_is_compared_exactly():
    """Ids are opaque: a selector differing only in case is not the same id."""
    rule = Rule(name="r", description="", mode="enforce", match=Match(departments=("DEP-FIN",)), require_mfa=("SMS",))
    department = Department(department_id="dep-fin", code=None, name=None)
    assert not evaluate_one(rule, make_user(department)).results[0].matched


@pytest.mark.parametrize("selector", ["finance", "Finance", "dep-fin"])
def test_members_of_a_sub_department_match_via_its_ancestor(selector):
    """A user in finance-payroll matches a rule for finance, and the reason names the path."""
    result = evaluate_one(make_rule(departments=(selector,)), make_user(PAYROLL)).results[0]
    assert result.matched
    assert result.reasons == (f"department {selector} (via ancestor of finance-payroll)",)


def test_direct_membership_is_preferred_over_an_ancestor_in_the_reason():
    """When a department matches both itself and through an ancestor, the reason names the direct match."""
    rule = make_rule(departments=("acme", "finance-payroll"))
    assert evaluate_one(rule, make_user(PAYROLL)).results[0].reasons == ("department finance-payroll",)


def test_each_matching_department_of_the_user_gives_a_reason():
    """A user in several matching departments sees each one explained."""
    result = evaluate_one(make_rule(departments=("finance",)), make_user(FINANCE, SALES, PAYROLL)).results[0]
    assert result.reasons == ("department finance", "department finance (via ancestor of finance-payroll)")


def test_user_outside_the_departments_does_not_match():
    """A user in none of the listed departments (or their sub-departments) is not matched, and told why."""
    result = evaluate_one(make_rule(departments=("finance", "legal")), make_user(SALES)).results[0]
    assert not result.matched
    assert result.reasons == ("not in any of departments [finance, legal]",)


def test_user_in_no_department_does_not_match():
    """An empty department list (fetched, but none) is a plain non-match."""
    evaluation = evaluate_one(make_rule(departments=("finance",)), make_user())
    assert matched_rules(evaluation) == ()
    assert required(evaluation) == ()


def test_ancestor_lists_of_different_lengths_are_each_checked():
    """A department whose source gave ancestor ids only still matches by ancestor id."""
    department = Department(department_id="d2", code=None, name=None, ancestor_ids=("dep-fin",))
    result = evaluate_one(make_rule(departments=("dep-fin",)), make_user(department)).results[0]
    assert result.reasons == ("department dep-fin (via ancestor of d2)",)


# --- email domains --------------------------------------------------------------------------------------


def test_email_domain_matches_ignoring_case():
    """The user's email domain matches a listed domain whatever its case."""
    rule = make_rule(email_domains=("acme.example",))
    result = evaluate_one(rule, make_user(email="Alice@ACME.Example", fetched=False)).results[0]
    assert result.matched
    assert result.reasons == ("email domain acme.example",)


def test_subdomain_does_not_match_its_parent_domain():
    """Domains match exactly: eu.acme.example is not acme.example."""
    rule = make_rule(email_domains=("acme.example",))
    result = evaluate_one(rule, make_user(email="bob@eu.acme.example", fetched=False)).results[0]
    assert not result.matched
    assert result.reasons == ("email domain eu.acme.example is not one of [acme.example]",)


@pytest.mark.parametrize("email", [None, "", "not-an-address", "@acme.example"])
def test_user_without_an_email_address_does_not_match_a_domain(email):
    """No usable email address means no email-domain match."""
    result = evaluate_one(make_rule(email_domains=("acme.example",)), make_user(email=email)).results[0]
    assert not result.matched
    assert result.reasons == ("no email address, so not in any of email domains [acme.example]",)


# --- combining ------------------------------------------------------------------------------------------


def test_all_keys_of_a_match_must_hold():
    """Department and email domain combine with AND; the reasons name only what failed."""
    rule = make_rule(departments=("finance",), email_domains=("corp.example",))
    miss = evaluate_one(rule, make_user(FINANCE, email="a@acme.example")).results[0]
    assert not miss.matched
    assert miss.reasons == ("email domain acme.example is not one of [corp.example]",)
    hit = evaluate_one(rule, make_user(FINANCE, email="a@corp.example")).results[0]
    assert hit.matched
    assert hit.reasons == ("department finance", "email domain corp.example")


def test_factors_of_matched_rules_are_united_in_factor_order():
    """A user matched by several rules must have every factor any of them requires, listed as FACTORS."""
    policy = Policy(
        rules=(
            make_rule("finance-face", departments=("finance",), factors=("FACE", "SMS")),
            make_rule("sales-email", departments=("sales",), factors=("EMAIL",)),
            make_rule("acme-otp", email_domains=("acme.example",), factors=("OTP", "SMS")),
        )
    )
    evaluation = evaluate(policy, make_user(PAYROLL), today=TODAY)
    assert evaluation.user_id == "u-1"
    assert [result.rule for result in evaluation.results] == ["finance-face", "sales-email", "acme-otp"]
    assert matched_rules(evaluation) == ("finance-face", "acme-otp")
    assert required(evaluation) == ("SMS", "OTP", "FACE")
    assert audit_only(evaluation) == ()


def test_empty_policy_requires_nothing():
    """With no rules nobody is matched and nothing is required."""
    evaluation = evaluate(Policy(rules=()), make_user(fetched=False), today=TODAY)
    assert evaluation == Evaluation(user_id="u-1", results=())


# --- audit ----------------------------------------------------------------------------------------------


def test_audit_rule_factors_are_audit_only_unless_an_enforced_rule_requires_them():
    """Audit-mode rules contribute to audit_only, never to required, and never repeat a required factor."""
    policy = Policy(
        rules=(
            make_rule("enforce-sms", departments=("finance",), factors=("SMS",)),
            make_rule("audit-sms-otp", departments=("finance",), factors=("SMS", "OTP"), mode="audit"),
        )
    )
    evaluation = evaluate(policy, make_user(FINANCE), today=TODAY)
    assert required(evaluation) == ("SMS",)
    assert audit_only(evaluation) == ("OTP",)
    assert [result.mode for result in evaluation.results] == ["enforce", "audit"]


def test_unmatched_audit_rule_contributes_nothing():
    """An audit rule that does not match adds no audit-only factors."""
    rule = make_rule(departments=("legal",), factors=("OTP",), mode="audit")
    assert audit_only(evaluate_one(rule, make_user(FINANCE))) == ()


def test_force_audit_turns_every_requirement_into_audit_only():
    """With force_audit nothing is required; every matched factor is audit-only and results say audit."""
    policy = Policy(
        rules=(
            make_rule("enforce-sms", departments=("finance",), factors=("SMS",)),
            make_rule("audit-otp", departments=("finance",), factors=("OTP",), mode="audit"),
        )
    )
    evaluation = evaluate(policy, make_user(FINANCE), today=TODAY, force_audit=True)
    assert required(evaluation) == ()
    assert audit_only(evaluation) == ("SMS", "OTP")
    assert matched_rules(evaluation) == ("enforce-sms", "audit-otp")
    assert {result.mode for result in evaluation.results} == {"audit"}


# --- facts ----------------------------------------------------------------------------------------------


def test_missing_departments_fact_is_an_error_not_a_non_match():
    """A department rule evaluated without fetched departments raises MissingFactError naming rule, user."""
    policy = Policy(rules=(make_rule("finance-sms", departments=("finance",), email_domains=("other.example",)),))
    with pytest.raises(MissingFactError) as caught:
        evaluate(policy, make_user(fetched=False), today=TODAY)
    error = caught.value
    assert isinstance(error, ServiceError)
    assert not isinstance(error, PolicyError)
    assert (error.fact, error.rule, error.user_id) == (Fact.DEPARTMENTS, "finance-sms", "u-1")
    assert "policy.needs" in str(error)


def test_departments_are_not_needed_when_no_rule_uses_them():
    """A policy of email rules evaluates without departments, and policy.needs says so."""
    policy = Policy(rules=(make_rule(email_domains=("acme.example",)),))
    assert policy.needs == frozenset()
    assert required(evaluate(policy, make_user(fetched=False), today=TODAY)) == ("SMS",)


def test_policy_needs_names_departments_when_any_rule_uses_them():
    """One department rule among others makes departments a needed fact."""
    policy = Policy(rules=(make_rule("a", email_domains=("acme.example",)), make_rule("b", departments=("finance",))))
    assert policy.needs == {Fact.DEPARTMENTS}
    assert Policy(rules=()).needs == frozenset()


def test_example_policy_requires_sms_of_finance_sub_department_members():
    """End to end through the file format: the finance-sms rule reaches a payroll clerk."""
    policy = parse_policy(
        "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [sms]\n"
    )
    assert required(evaluate(policy, make_user(PAYROLL), today=TODAY)) == ("SMS",)
    assert required(evaluate(policy, make_user(SALES), today=TODAY)) == ()


# --- exceptions -----------------------------------------------------------------------------------------

PILOT = Exemption(reason="Hardware token pilot", groups=("mfa-exempt",), expires=date(2027, 1, 31))


def exempting_rule(*exceptions: Exemption, name: str = "finance-sms", mode: str = "enforce") -> Rule:
    match = Match(departments=("finance",))
    return Rule(name=name, description="", mode=mode, match=match, require_mfa=("SMS",), exceptions=exceptions)


def grouped_user(*groups: str, user_id: str = "u-1") -> UserFacts:
    return UserFacts(user_id=user_id, email="a@acme.example", departments=(FINANCE,), groups=groups)


def test_member_of_an_exempt_group_is_exempt_until_the_exception_expires():
    """An exempt rule still counts as matched but contributes no factors; the reason says until when."""
    evaluation = evaluate(Policy(rules=(exempting_rule(PILOT),)), grouped_user("mfa-exempt"), today=TODAY)
    [result] = evaluation.results
    assert (result.matched, result.exempt) == (True, True)
    assert result.exemption == "exempt until 2027-01-31: Hardware token pilot (group mfa-exempt)"
    assert result.expired_exemptions == ()
    assert matched_rules(evaluation) == ("finance-sms",)
    assert exempt_rules(evaluation) == ("finance-sms",)
    assert (required(evaluation), audit_only(evaluation), rule_factors(evaluation)) == ((), (), {})


def test_exception_applies_on_its_last_day_and_not_after():
    """On the expires date the user is exempt; the day after the rule applies and the report says why."""
    policy = Policy(rules=(exempting_rule(PILOT),))
    assert required(evaluate(policy, grouped_user("mfa-exempt"), today=date(2027, 1, 31))) == ()
    after = evaluate(policy, grouped_user("mfa-exempt"), today=date(2027, 2, 1))
    [result] = after.results
    assert (result.matched, result.exempt, result.exemption) == (True, False, None)
    assert result.expired_exemptions == ("exception expired 2027-01-31: Hardware token pilot (group mfa-exempt)",)
    assert required(after) == ("SMS",)


def test_exception_by_user_id_without_expiry():
    """An exception listing the user's id exempts them for good, and says so."""
    rule = exempting_rule(Exemption(reason="break-glass account", users=("u-1",)))
    [result] = evaluate(Policy(rules=(rule,)), grouped_user(), today=TODAY).results
    assert result.exemption == "exempt: break-glass account (user u-1)"
    assert required(evaluate(Policy(rules=(rule,)), grouped_user(user_id="u-2"), today=TODAY)) == ("SMS",)


def test_a_live_exception_wins_over_an_expired_one_and_both_are_reported():
    """With one expired and one current exception, the user is exempt and the expired one is still shown."""
    expired = Exemption(reason="old pilot", users=("u-1",), expires=date(2026, 1, 1))
    current = Exemption(reason="new pilot", groups=("MFA-Exempt",))
    [result] = evaluate(
        Policy(rules=(exempting_rule(expired, current),)), grouped_user("mfa-exempt"), today=TODAY
    ).results
    assert result.exemption == "exempt: new pilot (group MFA-Exempt)"
    assert result.expired_exemptions == ("exception expired 2026-01-01: old pilot (user u-1)",)


def test_exceptions_only_concern_users_the_rule_matches():
    """A user the rule does not match is simply not matched: no exemption, no expired lines."""
    user = UserFacts(user_id="u-1", departments=(SALES,), groups=("mfa-exempt",))
    [result] = evaluate(Policy(rules=(exempting_rule(PILOT),)), user, today=TODAY).results
    assert (result.matched, result.exempt, result.expired_exemptions) == (False, False, ())


def test_exemption_from_one_rule_leaves_the_others():
    """Being exempt from one rule does not remove factors another matching rule requires."""
    policy = Policy(
        rules=(
            exempting_rule(PILOT),
            make_rule("finance-otp", departments=("finance",), factors=("SMS", "OTP")),
        )
    )
    evaluation = evaluate(policy, grouped_user("mfa-exempt"), today=TODAY)
    assert required(evaluation) == ("SMS", "OTP")
    assert rule_factors(evaluation) == {"finance-otp": ("SMS", "OTP")}


# --- fallbacks and per-rule factors ---------------------------------------------------------------------


def fallback_rule(name: str, factors: tuple[str, ...], fallback: tuple[str, ...], mode: str = "enforce") -> Rule:
    match = Match(departments=("finance",))
    return Rule(name=name, description="", mode=mode, match=match, require_mfa=factors, fallback=fallback)


def test_fallbacks_are_declared_per_required_factor_in_rule_order_without_repeats():
    """For each required factor, the fallbacks of the rules requiring it, first rule first, deduplicated."""
    policy = Policy(
        rules=(
            fallback_rule("a", ("SMS",), ("EMAIL", "OTP")),
            fallback_rule("b", ("SMS", "FACE"), ("OTP", "EMAIL")),
            fallback_rule("c", ("EMAIL",), ()),
        )
    )
    evaluation = evaluate(policy, make_user(FINANCE), today=TODAY)
    assert required(evaluation) == ("SMS", "EMAIL", "FACE")
    assert fallbacks(evaluation) == {"SMS": ("EMAIL", "OTP"), "EMAIL": (), "FACE": ("OTP", "EMAIL")}
    assert rule_factors(evaluation) == {"a": ("SMS",), "b": ("SMS", "FACE"), "c": ("EMAIL",)}
    assert evaluation.results[0].fallback == ("EMAIL", "OTP")


def test_audit_rule_fallbacks_never_loosen_an_enforced_factor():
    """An enforced factor takes fallbacks from enforce-mode rules only; audit rules' go with audit_only."""
    policy = Policy(
        rules=(
            fallback_rule("enforced", ("SMS",), ()),
            fallback_rule("audited", ("SMS", "EMAIL"), ("OTP",), mode="audit"),
        )
    )
    evaluation = evaluate(policy, make_user(FINANCE), today=TODAY)
    assert (required(evaluation), audit_only(evaluation)) == (("SMS",), ("EMAIL",))
    assert fallbacks(evaluation) == {"SMS": (), "EMAIL": ("OTP",)}


def test_unmatched_rules_have_no_factors_or_fallbacks():
    """rule_factors and fallbacks only cover rules that apply."""
    policy = Policy(rules=(fallback_rule("a", ("SMS",), ("EMAIL",)),))
    evaluation = evaluate(policy, make_user(SALES), today=TODAY)
    assert (fallbacks(evaluation), rule_factors(evaluation)) == ({}, {})


# --- new facts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "fact"),
    [
        (Match(groups=("contractors",)), Fact.GROUPS),
        (Match(email_domains=("acme.example",), negated=Match(roles=(Role("admin"),))), Fact.ROLES),
        (Match(any_of=(Match(custom_data=(("level", ValueTest.exists()),)),)), Fact.CUSTOM_DATA),
    ],
)
def test_missing_groups_roles_or_custom_data_are_errors(match, fact):
    """A rule using a fact at any depth raises MissingFactError when that fact was not gathered."""
    rule = Rule(name="r", description="", mode="enforce", match=match, require_mfa=("SMS",))
    with pytest.raises(MissingFactError) as caught:
        evaluate(Policy(rules=(rule,)), UserFacts(user_id="u-1", email="a@acme.example"), today=TODAY)
    assert caught.value.fact is fact


def test_exception_by_group_needs_the_groups_fact():
    """Deciding an exception by group needs the user's groups, even when the match does not."""
    with pytest.raises(MissingFactError) as caught:
        evaluate(Policy(rules=(exempting_rule(PILOT),)), make_user(FINANCE), today=TODAY)
    assert caught.value.fact is Fact.GROUPS


def test_v1_file_with_new_keys_evaluates_end_to_end():
    """Finance but not contractors, through the file format: a contractor is not matched, a clerk is."""
    policy = parse_policy(
        "policies:\n"
        "  - name: finance-staff\n"
        "    match: {departments: [finance], not: {groups: [contractors]}}\n"
        "    require_mfa: [SMS]\n"
        "    fallback: [EMAIL]\n"
    )
    contractor = UserFacts(user_id="u-1", departments=(PAYROLL,), groups=("contractors",))
    clerk = UserFacts(user_id="u-2", departments=(PAYROLL,), groups=())
    assert evaluate(policy, contractor, today=TODAY).results[0].reasons == ("not: group contractors matched",)
    assert fallbacks(evaluate(policy, clerk, today=TODAY)) == {"SMS": ("EMAIL",)}
