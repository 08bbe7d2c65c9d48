"""The rule types: what each declares it needs, and the invariants their constructors keep."""

from __future__ import annotations

import pytest

from service.policy import FACTORS, Fact, Match, Policy, Rule


def make_rule(name: str = "r", **match: tuple[str, ...]) -> Rule:
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
    with pytest.raises(ValueError, match="at least one of departments, email_domains"):
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
