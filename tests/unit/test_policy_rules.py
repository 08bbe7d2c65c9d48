"""The rule types: what each declares it needs, and the invariants their constructors keep."""

from __future__ import annotations

from datetime import date

import pytest

from service.policy import FACTORS, Exemption, Fact, Match, Policy, Role, Rule, ValueTest


def make_rule(name: str = "r", **match: object) -> Rule:
    return Rule(name=name, description="", mode="enforce", match=Match(**match), require_mfa=("SMS",))


def test_factors_are_the_four_genauth_factors_in_decision_order():
    """FACTORS fixes both the accepted factor names and the order decisions list them in."""
    assert FACTORS == ("SMS", "EMAIL", "OTP", "FACE")


def test_match_on_departments_needs_the_departments_fact():
    """A department condition costs a departments lookup; an email condition needs only the user record."""
    assert Match(departments=("finance",)).needs == {Fact.DEPARTMENTS}
    assert Match(email_domains=("corp.example.com",)).needs == frozenset()


def test_policy_needs_is_the_union_over_its_rules():
    """The policy needs a fact when any one of its rules does."""
    policy = Policy(rules=(make_rule("a", email_domains=("a.example",)), make_rule("b", departments=("x",))))
    assert policy.needs == {Fact.DEPARTMENTS}
    assert Policy(rules=(make_rule("a", email_domains=("a.example",)),)).needs == frozenset()
    assert Policy(rules=()).needs == frozenset()


def test_policy_finds_a_rule_by_name():
    """rule(name) returns the named rule and raises KeyError for a name it does not have."""
    finance = make_rule("finance-sms", departments=("finance",))
    policy = Policy(rules=(make_rule("other", departments=("x",)), finance))
    assert policy.rule("finance-sms") is finance
    with pytest.raises(KeyError):
        policy.rule("missing")


def test_empty_match_cannot_be_built():
    """A match with no condition would match everyone, so building one by hand fails loudly."""
    with pytest.raises(ValueError, match="at least one of departments, groups, roles, email_domains"):
        Match()


@pytest.mark.parametrize(
    ("mode", "factors", "message"),
    [
        ("enforced", ("SMS",), "mode 'enforced'"),
        ("enforce", (), "require_mfa is empty"),
        ("enforce", ("sms",), "not among SMS, EMAIL, OTP, FACE"),
    ],
)
def test_rule_refuses_what_the_loader_would_refuse(mode, factors, message):
    """Rules built in code keep the same invariants as rules loaded from a file."""
    with pytest.raises(ValueError, match=message):
        Rule(name="r", description="", mode=mode, match=Match(departments=("x",)), require_mfa=factors)


def test_policy_refuses_repeated_rule_names():
    """Rule names identify rules in decisions, so a policy cannot hold two with the same name."""
    with pytest.raises(ValueError, match="repeat"):
        Policy(rules=(make_rule("a", departments=("x",)), make_rule("a", departments=("y",))))


def test_audit_rule_says_so():
    """is_audit tells audit-mode rules apart from enforcing ones."""
    rule = Rule(name="r", description="", mode="audit", match=Match(departments=("x",)), require_mfa=("OTP",))
    assert rule.is_audit
    assert not make_rule(departments=("x",)).is_audit


# --- the v1 extensions: facts at any depth, namespaces, exceptions, fallbacks ----------------------------


def test_needs_are_found_at_any_depth_of_the_match():
    """Groups, roles and custom data used inside all/any/not are needed facts like top-level ones."""
    inner = Match(
        email_domains=("a.example",),
        any_of=(Match(groups=("contractors",)), Match(custom_data=(("level", ValueTest.exists()),))),
        negated=Match(roles=(Role("admin"),)),
    )
    match = Match(departments=("finance",), all_of=(inner,))
    assert match.needs == {Fact.DEPARTMENTS, Fact.GROUPS, Fact.ROLES, Fact.CUSTOM_DATA}
    assert Match(status=("Activated",), external_id=ValueTest.exists()).needs == frozenset()


def test_exception_by_group_makes_groups_a_needed_fact():
    """A rule whose exception names groups needs the user's groups even if its match does not."""
    exemption = Exemption(reason="pilot", groups=("mfa-exempt",))
    rule = Rule(name="r", description="", mode="enforce", match=Match(departments=("x",)), require_mfa=("SMS",))
    with_groups = Rule(**{**rule.__dict__, "exceptions": (exemption,)})
    by_user = Rule(**{**rule.__dict__, "exceptions": (Exemption(reason="pilot", users=("u-1",)),)})
    assert rule.needs == {Fact.DEPARTMENTS}
    assert with_groups.needs == {Fact.DEPARTMENTS, Fact.GROUPS}
    assert by_user.needs == {Fact.DEPARTMENTS}
    assert Policy(rules=(with_groups,)).needs == {Fact.DEPARTMENTS, Fact.GROUPS}


def test_role_namespaces_list_every_namespace_the_rules_mention():
    """role_namespaces is what the enforcer reads get-user-roles for: default for bare codes."""
    policy = Policy(
        rules=(
            make_rule("a", roles=(Role("admin"),)),
            make_rule("b", negated=Match(roles=(Role("approver", "finance-app"),))),
            make_rule("c", departments=("x",)),
        )
    )
    assert policy.role_namespaces == {"default", "finance-app"}
    assert Policy(rules=(make_rule("c", departments=("x",)),)).role_namespaces == frozenset()


def test_include_subdepartments_needs_departments():
    """Excluding sub-departments means nothing without departments, so such a match cannot be built."""
    with pytest.raises(ValueError, match="include_subdepartments"):
        Match(groups=("g",), include_subdepartments=False)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ValueTest("between", (1, 2)), "not one of equals, in, exists"),
        (lambda: ValueTest("equals", ()), "got 0 value"),
        (lambda: ValueTest("in", ()), "got 0 value"),
        (lambda: ValueTest("exists", ("x",)), "got 1 value"),
        (lambda: Exemption(reason=" ", users=("u",)), "needs a reason"),
        (lambda: Exemption(reason="why"), "users or groups"),
    ],
)
def test_value_tests_and_exceptions_keep_their_invariants(build, message):
    """Value tests take the right number of values; exceptions need a reason and someone to exempt."""
    with pytest.raises(ValueError, match=message):
        build()


def test_fallback_must_be_factors_not_already_required():
    """A fallback stands in for a required factor, so it cannot repeat one or name an unknown factor."""
    match = Match(departments=("x",))
    with pytest.raises(ValueError, match="already required"):
        Rule(name="r", description="", mode="enforce", match=match, require_mfa=("SMS",), fallback=("SMS",))
    with pytest.raises(ValueError, match="not among"):
        Rule(name="r", description="", mode="enforce", match=match, require_mfa=("SMS",), fallback=("TOTP",))


def test_exception_expires_after_its_last_day():
    """An exception applies through its expires date and is expired from the day after."""
    exemption = Exemption(reason="pilot", users=("u",), expires=date(2027, 1, 31))
    assert not exemption.is_expired(date(2027, 1, 31))
    assert exemption.is_expired(date(2027, 2, 1))
    assert not Exemption(reason="pilot", users=("u",)).is_expired(date(2999, 1, 1))
