"""Evaluating the policy for one user: which rules match, why, and which factors follow."""

from __future__ import annotations

import pytest

from service.errors import ServiceError
from service.policy import (
    Department,
    Evaluation,
    Fact,
    Match,
    MissingFactError,
    Policy,
    PolicyError,
    Rule,
    UserFacts,
    evaluate,
    facts_needed,
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
    return evaluate(Policy(rules=(rule,)), user)


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
    assert evaluation.matched_rules == ()
    assert evaluation.required == ()


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
    evaluation = evaluate(policy, make_user(PAYROLL))
    assert evaluation.user_id == "u-1"
    assert [result.rule for result in evaluation.results] == ["finance-face", "sales-email", "acme-otp"]
    assert evaluation.matched_rules == ("finance-face", "acme-otp")
    assert evaluation.required == ("SMS", "OTP", "FACE")
    assert evaluation.audit_only == ()


def test_empty_policy_requires_nothing():
    """With no rules nobody is matched and nothing is required."""
    evaluation = evaluate(Policy(rules=()), make_user(fetched=False))
    assert evaluation == Evaluation(user_id="u-1", results=(), required=(), audit_only=())


# --- audit ----------------------------------------------------------------------------------------------


def test_audit_rule_factors_are_audit_only_unless_an_enforced_rule_requires_them():
    """Audit-mode rules contribute to audit_only, never to required, and never repeat a required factor."""
    policy = Policy(
        rules=(
            make_rule("enforce-sms", departments=("finance",), factors=("SMS",)),
            make_rule("audit-sms-otp", departments=("finance",), factors=("SMS", "OTP"), mode="audit"),
        )
    )
    evaluation = evaluate(policy, make_user(FINANCE))
    assert evaluation.required == ("SMS",)
    assert evaluation.audit_only == ("OTP",)
    assert [result.mode for result in evaluation.results] == ["enforce", "audit"]


def test_unmatched_audit_rule_contributes_nothing():
    """An audit rule that does not match adds no audit-only factors."""
    rule = make_rule(departments=("legal",), factors=("OTP",), mode="audit")
    assert evaluate_one(rule, make_user(FINANCE)).audit_only == ()


def test_force_audit_turns_every_requirement_into_audit_only():
    """With force_audit nothing is required; every matched factor is audit-only and results say audit."""
    policy = Policy(
        rules=(
            make_rule("enforce-sms", departments=("finance",), factors=("SMS",)),
            make_rule("audit-otp", departments=("finance",), factors=("OTP",), mode="audit"),
        )
    )
    evaluation = evaluate(policy, make_user(FINANCE), force_audit=True)
    assert evaluation.required == ()
    assert evaluation.audit_only == ("SMS", "OTP")
    assert evaluation.matched_rules == ("enforce-sms", "audit-otp")
    assert {result.mode for result in evaluation.results} == {"audit"}


# --- facts ----------------------------------------------------------------------------------------------


def test_missing_departments_fact_is_an_error_not_a_non_match():
    """A department rule evaluated without fetched departments raises MissingFactError naming rule, user."""
    policy = Policy(rules=(make_rule("finance-sms", departments=("finance",), email_domains=("other.example",)),))
    with pytest.raises(MissingFactError) as caught:
        evaluate(policy, make_user(fetched=False))
    error = caught.value
    assert isinstance(error, ServiceError)
    assert not isinstance(error, PolicyError)
    assert (error.fact, error.rule, error.user_id) == (Fact.DEPARTMENTS, "finance-sms", "u-1")
    assert "facts_needed" in str(error)


def test_departments_are_not_needed_when_no_rule_uses_them():
    """A policy of email rules evaluates without departments, and facts_needed says so."""
    policy = Policy(rules=(make_rule(email_domains=("acme.example",)),))
    assert facts_needed(policy) == frozenset()
    assert evaluate(policy, make_user(fetched=False)).required == ("SMS",)


def test_facts_needed_names_departments_when_any_rule_uses_them():
    """One department rule among others makes departments a needed fact."""
    policy = Policy(rules=(make_rule("a", email_domains=("acme.example",)), make_rule("b", departments=("finance",))))
    assert facts_needed(policy) == {Fact.DEPARTMENTS}
    assert facts_needed(Policy(rules=())) == frozenset()


def test_example_policy_requires_sms_of_finance_sub_department_members():
    """End to end through the file format: the finance-sms rule reaches a payroll clerk."""
    policy = parse_policy(
        "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [sms]\n"
    )
    assert evaluate(policy, make_user(PAYROLL)).required == ("SMS",)
    assert evaluate(policy, make_user(SALES)).required == ()
