"""A rule's rollout (issue 16), pure: the keys as the file gives them, what they refuse, the user's deadline
(``enforce_from``, the first wave that matches, the grace period from the stored first sighting; the later
date wins), ``pending`` before it, ``overdue`` after it, the buckets, the timeline and suites that pin today."""

from __future__ import annotations

import textwrap
from datetime import date, timedelta

import pytest

from service.policy import (
    Department,
    PolicyError,
    UserFacts,
    evaluate,
    parse_policy,
    parse_suite,
    rule_outcomes,
    run_suite,
)
from service.policy.outcomes import action_of
from service.policy.rollout import Sighting, timeline
from service.vocabulary import Action, Bucket, OutcomeKind, bucket, pending_until

HEAD = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
PHONE = "+8613800138000"


def policy(rollout: str):
    return parse_policy(HEAD + textwrap.indent(textwrap.dedent(rollout), "    "))


FINANCE = Department(department_id="dep-fin", code="finance", name="Finance")


def user(*groups: str, phone: str | None = PHONE) -> UserFacts:
    return UserFacts(user_id="u-1", phone=phone, departments=(FINANCE,), groups=groups)


def outcome(rules, facts, today, sighting=None):
    sightings = {"finance-sms": sighting} if sighting else None
    evaluation = evaluate(rules, facts, today=today, sightings=sightings)
    return rule_outcomes(evaluation, facts, ())["finance-sms"], evaluation.results[0]


def test_before_enforce_from_the_rule_is_pending_with_the_date_and_adds_nothing():
    rules = policy("enforce_from: 2027-01-15\n")
    found, result = outcome(rules, user(), date(2027, 1, 14))
    assert found.kind == OutcomeKind.PENDING and found.add == () and found.deferred == ("SMS",)
    assert found.label == "pending [SMS] until 2027-01-15 (enforce_from)"
    assert pending_until(found.label) == date(2027, 1, 15)
    assert action_of([found], wrote=False, would=False) == Action.PENDING
    assert bucket(found.label, action=Action.PENDING, mode="enforce", rule_mode="enforce") == Bucket.PENDING
    assert result.pending and result.schedule is not None and result.schedule.source == "enforce_from"
    on_the_day, _ = outcome(rules, user(), date(2027, 1, 15))
    assert on_the_day.label == "enforce [SMS]"


def test_grace_counts_from_the_stored_first_sighting_and_the_later_date_wins():
    rules = policy("enforce_from: 2027-01-15\ngrace: 14d\n")
    never_seen, _ = outcome(rules, user(), date(2027, 1, 10))  # first seen today
    assert never_seen.label == "pending [SMS] until 2027-01-24 (grace 14d from first seen 2027-01-10)"
    seen_long_ago = Sighting(date(2026, 12, 1), grace_until=date(2026, 12, 15))
    early, _ = outcome(rules, user(), date(2027, 1, 10), seen_long_ago)
    assert early.label == "pending [SMS] until 2027-01-15 (enforce_from)"
    stored = Sighting(date(2027, 1, 10), grace_until=date(2027, 1, 20))  # fixed then: a later grace edit moves nothing
    fixed, _ = outcome(policy("grace: 30d\n"), user(), date(2027, 1, 19), stored)
    assert fixed.label == "pending [SMS] until 2027-01-20 (grace 30d from first seen 2027-01-10)"


def test_the_first_wave_that_matches_gives_the_start_and_a_wave_without_match_takes_the_rest():
    rules = policy("""\
        enforce_from: 2027-02-01
        waves:
          - {name: pilot, match: {groups: [mfa-pilot]}, from: 2027-01-04}
          - {name: admins, match: {groups: [admins, mfa-pilot]}, from: 2027-01-11}
        """)
    assert rules.needs == {"departments", "groups"}
    pilot, _ = outcome(rules, user("mfa-pilot"), date(2027, 1, 4))
    admin, _ = outcome(rules, user("admins"), date(2027, 1, 4))
    rest, _ = outcome(rules, user(), date(2027, 1, 20))
    assert pilot.label == "enforce [SMS]"
    assert admin.label == "pending [SMS] until 2027-01-11 (wave admins)"
    assert rest.label == "pending [SMS] until 2027-02-01 (enforce_from)"
    everyone = policy(
        "waves:\n  - {name: pilot, match: {groups: [p]}, from: 2027-01-04}\n  - {name: all, from: 2027-01-18}\n"
    )
    assert outcome(everyone, user(), date(2027, 1, 5))[0].label == "pending [SMS] until 2027-01-18 (wave all)"


def test_past_the_deadline_an_unsatisfiable_user_is_overdue_and_a_held_write_is_held():
    rules = policy("enforce_from: 2027-01-15\n")
    before, _ = outcome(rules, user(phone=None), date(2027, 1, 1))
    after, _ = outcome(rules, user(phone=None), date(2027, 1, 16))
    assert before.label == "unsatisfiable [SMS]"
    assert after.label == "unsatisfiable [SMS] (overdue since 2027-01-15)"
    assert bucket(after.label, action=Action.UNSATISFIABLE, mode="enforce", rule_mode="enforce") == Bucket.OVERDUE
    assert bucket("enforce [SMS]", action=Action.HELD, mode="enforce", rule_mode="enforce") == Bucket.HELD
    audit = parse_policy(
        HEAD.replace("    require_mfa", "    mode: audit\n    require_mfa") + "    enforce_from: 2027-01-15\n"
    )
    assert outcome(audit, user(phone=None), date(2027, 1, 16))[0].label == "unsatisfiable [SMS]"


def test_an_exempt_or_compliant_user_stays_so_before_the_date():
    rules = policy("enforce_from: 2027-01-15\n")
    facts = user()
    evaluation = evaluate(rules, facts, today=date(2027, 1, 1))
    assert rule_outcomes(evaluation, facts, ("SMS",))["finance-sms"].kind == OutcomeKind.COMPLIANT


@pytest.mark.parametrize(
    ("rollout", "problem"),
    [
        ("enforce_from: 2027-02-30\n", "enforce_from: expected a date like 2027-01-31, got text ('2027-02-30')"),
        ("grace: 14\n", "grace: expected a duration like 14d or 2w, got a number (14)"),
        ("grace: 0d\n", "grace: a duration must be 1 to 3660 days, got '0d'"),
        (
            "enforce_from: 2027-01-15\nwaves:\n  - {name: pilot, from: 2027-01-20}\n",
            "waves[0].from: 2027-01-20 is after the rule's enforce_from 2027-01-15",
        ),
        (
            "enforce_from: 2027-01-15\nwaves:\n  - {name: pilot, match: {team: [x]}, from: 2027-01-02}\n",
            "waves[0].match.team: unknown key; expected departments,",
        ),
        ("waves:\n  - {name: pilot, match: {groups: [p]}, from: 2027-01-02}\n", "waves: users in no wave would never"),
        ("waves:\n  - {name: pilot, frm: 2027-01-02}\n", "waves[0].frm: unknown key; expected name, match, from"),
        ("waves: []\n", "waves: must list at least one wave"),
    ],
)
def test_bad_rollout_keys_name_the_rule_and_the_field(rollout, problem):
    with pytest.raises(PolicyError) as raised:
        policy(rollout)
    assert any(line.startswith(f"policies[0] (finance-sms): {problem}") for line in raised.value.problems), (
        raised.value.problems
    )


def test_the_timeline_lists_the_steps_in_date_order():
    rules = policy("""\
        enforce_from: 2027-02-01
        grace: 2w
        waves:
          - {name: pilot, match: {groups: [mfa-pilot]}, from: 2027-01-04}
        """)
    assert timeline(rules.rules[0].rollout) == [
        "2027-01-04  wave pilot: users with groups any of [mfa-pilot]",
        "2027-02-01  enforce_from: everyone in no wave",
        "+ grace 14d from when each user is first seen in scope (the later date wins)",
    ]


def test_a_suite_pins_today_and_expects_pending_or_enforce():
    rules = policy("enforce_from: 2027-01-15\n")
    suite = parse_suite(
        textwrap.dedent("""\
            today: 2027-01-10
            cases:
              - name: before the date
                user: {id: u1, phone: "+8613800138000", departments: [finance]}
                expect: {finance-sms: "pending [SMS]"}
              - name: after the date
                today: 2027-01-15
                user: {id: u1, phone: "+8613800138000", departments: [finance]}
                expect: {finance-sms: "enforce [SMS]"}
              - name: wrong on purpose
                user: {id: u1, phone: "+8613800138000", departments: [finance]}
                expect: {finance-sms: "enforce [SMS]"}
            """)
    )
    result = run_suite(suite, rules, today=date(2026, 1, 1))
    assert [case.passed for case in result.results] == [True, True, False]


def test_grace_in_weeks_is_days_times_seven():
    rules = policy("grace: 2w\n")
    assert rules.rules[0].rollout is not None and rules.rules[0].rollout.grace == timedelta(days=14)
