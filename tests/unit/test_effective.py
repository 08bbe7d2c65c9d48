"""Which factors GenAuth will not challenge (``service.enforcement.effective.gaps``), where the report counts
such a user (``bucket``), and the ``apps`` rule key."""

from __future__ import annotations

from datetime import date

import pytest

from service.enforcement.effective import Layers, gaps, settled_by
from service.policy import Department, Match, Policy, Rule, UserFacts, evaluate, parse_policy, rule_outcomes
from service.policy.errors import PolicyError
from service.vocabulary import Action, Bucket, bucket

TODAY = date(2026, 12, 1)
FINANCE = Department(department_id="dep-fin", code="finance", name="Finance")
ALL = frozenset({"SMS", "EMAIL", "OTP"})


def judged(rule, layers, *, enabled, views=None, phone="+8613800138000", viewed=None):
    facts = UserFacts(user_id="u1", phone=phone, email="a@corp.example", departments=(FINANCE,))
    evaluation = evaluate(Policy(rules=(rule,)), facts, today=TODAY)
    outcomes = rule_outcomes(evaluation, facts, enabled)
    matched = [result for result in evaluation.results if result.matched]
    return gaps(matched, outcomes, layers, enabled=enabled, app_views=views or {}, viewed=viewed)


def sms_rule(*, apps=(), fallback=()):
    return Rule(
        name="r",
        description="",
        mode="enforce",
        match=Match(departments=("finance",)),
        require_mfa=("SMS",),
        fallback=fallback,
        apps=apps,
    )


def test_a_factor_the_pool_enables_is_effective():
    assert judged(sms_rule(), Layers(pool=ALL), enabled=("SMS",)) == ()


def test_a_factor_the_pool_does_not_enable_is_a_gap_with_what_to_switch_on():
    [gap] = judged(sms_rule(), Layers(pool=frozenset({"EMAIL"})), enabled=("SMS",))
    assert (gap.factor, gap.app, gap.rules, gap.why) == ("SMS", None, ("r",), "SMS is not enabled for the pool")
    assert gap.fix.startswith("switch SMS on for the pool")


def test_a_factor_the_user_does_not_have_is_not_judged():
    """An audit rule's factor, or one not written: the report counts the user by their outcome."""
    assert judged(sms_rule(), Layers(pool=frozenset()), enabled=()) == ()


def test_the_fallback_standing_in_is_the_factor_judged():
    [gap] = judged(sms_rule(fallback=("EMAIL",)), Layers(pool=frozenset({"SMS"})), enabled=("EMAIL",), phone=None)
    assert (gap.factor, gap.why) == ("EMAIL", "EMAIL is not enabled for the pool")


def test_unreadable_pool_settings_are_never_effective():
    [gap] = judged(sms_rule(), Layers(pool=None, pool_problem="refused"), enabled=("SMS",))
    assert "could not be read (refused)" in gap.why


def test_an_app_with_its_own_settings_is_judged_by_the_users_view_in_it():
    layers = Layers(pool=ALL, customises={"app1": True})
    lacking = {"app1": {"applicationMfa": [{"mfaPolicy": "EMAIL", "status": 1}]}}
    [gap] = judged(sms_rule(apps=("app1",)), layers, enabled=("SMS",), views=lacking)
    assert (gap.app, gap.why) == ("app1", "app app1 does not enable SMS")
    having = {"app1": {"applicationMfa": [{"mfaPolicy": "SMS", "status": 1}]}}
    assert judged(sms_rule(apps=("app1",)), layers, enabled=("SMS",), views=having) == ()
    assert judged(sms_rule(apps=("app1",)), layers, enabled=("SMS",), views=lacking, viewed=()) == (), (
        "a factor not stored yet cannot be judged in the app"
    )


def test_an_app_that_uses_the_pool_is_judged_by_the_pool_and_an_unknown_app_never_effective():
    layers = Layers(pool=frozenset({"EMAIL"}), customises={"app1": False, "gone": "application gone not found"})
    found = judged(sms_rule(apps=("app1", "gone")), layers, enabled=("SMS",))
    assert {(gap.app, gap.why) for gap in found} == {
        (None, "SMS is not enabled for the pool"),
        ("gone", "application gone not found"),
    }


def test_settled_gaps_after_a_read():
    """A pool gap settles once the pool enables the factor; an app gap after an event or a changed app."""
    before, after = Layers(pool=frozenset(), customises={"a": True}), Layers(pool=ALL, customises={"a": True})
    settled = settled_by(after, before, events_moved=False)
    assert settled({"factor": "SMS", "app": None}) and not settled({"factor": "FACE", "app": None})
    assert not settled({"factor": "SMS", "app": "a"})
    assert settled_by(after, before, events_moved=True)({"factor": "SMS", "app": "a"})
    assert settled_by(after, None, events_moved=False)({"factor": "SMS", "app": "a"}), "a first read cannot tell"


@pytest.mark.parametrize(
    ("label", "action", "expected"),
    [
        ("compliant", Action.NONE, Bucket.NOT_EFFECTIVE),
        ("enforce [SMS]", Action.ENFORCED, Bucket.NOT_EFFECTIVE),
        ("enforce [SMS]", Action.WOULD_ENFORCE, Bucket.WOULD_ENFORCE),
        ("unsatisfiable [SMS]", Action.UNSATISFIABLE, Bucket.UNSATISFIABLE),
        ("compliant", Action.FAILED, Bucket.FAILED),
    ],
)
def test_not_effective_replaces_only_compliant_and_enforced(label, action, expected):
    assert bucket(label, action=action, mode="enforce", rule_mode="enforce", not_effective=True) == expected


def test_the_apps_key_is_read_and_checked():
    policy = parse_policy(
        "policies:\n  - name: r\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n    apps: [a1, a1, a2]\n"
    )
    assert policy.rules[0].apps == ("a1", "a2") and policy.apps == {"a1", "a2"}
    with pytest.raises(PolicyError, match="apps"):
        parse_policy(
            "policies:\n  - name: r\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n    apps: a1\n"
        )
