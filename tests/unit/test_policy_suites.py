"""Policy test suites: the file format, expectations, running cases against a policy, and the shipped
suite for the shipped policy."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from service.policy import (
    Department,
    Expectation,
    Outcome,
    Role,
    SuiteError,
    load_policy,
    load_suite,
    parse_policy,
    parse_suite,
    run_suite,
)
from service.policy.suites import parse_expectation
from service.vocabulary import OutcomeKind

CONFIG = Path(__file__).resolve().parents[2] / "config"
TODAY = date(2026, 12, 1)
POLICY = parse_policy(
    textwrap.dedent("""\
        policies:
          - name: finance-sms
            match: {departments: [finance]}
            require_mfa: [SMS]
            fallback: [EMAIL]
            exceptions: [{groups: [mfa-exempt], reason: pilot, expires: 2027-01-31}]
          - name: admins-otp
            mode: audit
            match: {roles: [admin]}
            require_mfa: [OTP]
    """)
)


def suite_text(cases: str, header: str = "") -> str:
    return header + "cases:\n" + textwrap.indent(textwrap.dedent(cases), "  ")


def problems_of(text: str) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        parse_suite(text, "suite.yaml")
    return caught.value.problems


# --- expectations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not-matched", Expectation("not-matched")),
        ("Exempt", Expectation("exempt")),
        ("compliant", Expectation("compliant")),
        ("compliant (fallback)", Expectation("compliant", fallback=True)),
        ("enforce [sms, OTP]", Expectation("enforce", ("SMS", "OTP"))),
        ("enforce [OTP, SMS]", Expectation("enforce", ("SMS", "OTP"))),
        ("enforce [EMAIL] (fallback for SMS)", Expectation("enforce", ("EMAIL",), True, ("SMS",))),
        ("unsatisfiable", Expectation("unsatisfiable")),
        ("unsatisfiable [SMS]", Expectation("unsatisfiable", ("SMS",))),
    ],
)
def test_expectations_parse_in_any_case_and_order(text, expected):
    """Outcome words and factors are case-insensitive; factors are kept in factor order."""
    assert parse_expectation(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("enforced [SMS]", "is not an outcome"),
        ("enforce", "enforce needs the factors it adds"),
        ("enforce []", "enforce needs the factors it adds"),
        ("exempt [SMS]", "only enforce, pending and unsatisfiable list factors"),
        ("unsatisfiable (fallback)", "only enforce and compliant can be by fallback"),
        ("enforce [TOTP]", "TOTP not among"),
        ("compliant (because)", "write (fallback) or (fallback for SMS)"),
    ],
)
def test_bad_expectations_say_what_is_expected(text, message):
    """Expectations that are not outcomes are refused with the accepted forms."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expectation(text)


def test_expectation_labels_round_trip_outcome_labels():
    """An outcome's label, written as an expectation, is met by that outcome."""
    outcomes = [
        Outcome(rule="r", kind="enforce", add=("EMAIL",), fallbacks={"SMS": "EMAIL"}),
        Outcome(rule="r", kind="compliant", fallbacks={"SMS": "OTP"}),
        Outcome(rule="r", kind="unsatisfiable", unsatisfiable={"SMS": "no phone number on record"}),
        Outcome(rule="r", kind="not-matched"),
    ]
    for outcome in outcomes:
        assert parse_expectation(outcome.label).is_met_by(outcome)


def test_expectation_without_fallback_note_accepts_a_fallback():
    """`enforce [EMAIL]` compares the factors only; `(fallback for X)` also checks what was replaced."""
    outcome = Outcome(rule="r", kind="enforce", add=("EMAIL",), fallbacks={"SMS": "EMAIL"})
    assert parse_expectation("enforce [EMAIL]").is_met_by(outcome)
    assert not parse_expectation("enforce [EMAIL] (fallback for OTP)").is_met_by(outcome)
    assert not parse_expectation("enforce [EMAIL] (fallback)").is_met_by(
        Outcome(rule="r", kind="enforce", add=("EMAIL",))
    )


# --- the file format ------------------------------------------------------------------------------------


def test_fixture_user_becomes_facts_and_current_mfa(tmp_path):
    """Every user key maps onto UserFacts (fetched facts empty when left out) and the current MFA data."""
    path = tmp_path / "suite.yaml"
    path.write_text(
        suite_text(
            """\
            - name: everything
              today: 2027-02-01
              user:
                id: u1
                email: a@acme.example
                phone: "13800138000"
                status: suspended
                external_id: EMP-1
                user_source_type: sync
                register_source: [import:manual]
                departments: [finance, {code: finance-payroll, name: Payroll, id: d-2, ancestors: [acme, finance]}]
                groups: [contractors]
                roles: [admin, {code: approver, namespace: finance-app}]
                custom_data: {costCenter: FIN-01, level: 5}
                mfa: [otp, EMAIL]
                mfa_phone: "139"
                mfa_email: m@acme.example
              expect: {finance-sms: "enforce [SMS]"}
            - name: minimal
              user: {}
              expect: {finance-sms: not-matched}
            """,
            header="policy: rules/policies.yaml\ntoday: 2026-12-01\n",
        )
    )
    suite = load_suite(path)
    assert (suite.source, suite.policy, suite.today) == (str(path), tmp_path / "rules/policies.yaml", TODAY)
    full, minimal = suite.cases
    assert full.today == date(2027, 2, 1)
    assert (full.enabled, full.mfa_phone, full.mfa_email) == (("EMAIL", "OTP"), "139", "m@acme.example")
    facts = full.facts
    assert (facts.user_id, facts.status, facts.user_source_type) == ("u1", "Suspended", "syncTask")
    assert facts.departments == (
        Department(department_id="finance", code="finance", name=None),
        Department(department_id="d-2", code="finance-payroll", name="Payroll", ancestor_codes=("acme", "finance")),
    )
    assert facts.roles == (Role("admin"), Role("approver", "finance-app"))
    assert facts.custom_data == {"costCenter": "FIN-01", "level": 5}
    assert full.expect == (("finance-sms", Expectation("enforce", ("SMS",))),)
    empty = minimal.facts
    assert (empty.user_id, empty.status, empty.departments, empty.groups, empty.roles, empty.custom_data) == (
        "test-user",
        "Activated",
        (),
        (),
        (),
        {},
    )


def test_every_problem_of_a_suite_is_reported_with_its_case_and_path():
    """A suite that does not validate lists every problem by case and field, like a policy file."""
    problems = problems_of(
        suite_text("""\
            - name: a
              user: {departments: [{cod: x}], mfa: [SMSS], status: gone}
              expect: {finance-sms: "enforced [SMS]", admins-otp: 3}
              extra: 1
            - name: A
              expect: {}
            """)
    )
    assert problems == [
        "cases[0] (a): user.status: 'gone' is not one of Activated, Suspended, Deactivated, Resigned, Archived",
        "cases[0] (a): user.departments[0].code: missing",
        "cases[0] (a): user.departments[0].cod: unknown key; expected code, name, id, ancestors",
        "cases[0] (a): user.mfa[0]: 'SMSS' is not one of SMS, EMAIL, OTP, FACE",
        "cases[0] (a): expect.admins-otp: expected an outcome (not-matched, exempt, compliant, enforce [FACTORS], "
        "pending [FACTORS], unsatisfiable [FACTORS], protected), got a number (3)",
        "cases[0] (a): expect.finance-sms: 'enforced [SMS]' is not an outcome; expected one of not-matched, "
        "exempt, compliant, enforce [FACTORS], pending [FACTORS], unsatisfiable [FACTORS], protected",
        "cases[0] (a): extra: unknown key; expected name, today, user, expect",
        "cases[1] (A): user: missing; describe the user (email, departments, mfa, ...)",
        "cases[1] (A): expect: expected a mapping of rule names to outcomes (not-matched, exempt, compliant, "
        "enforce [FACTORS], pending [FACTORS], unsatisfiable [FACTORS], protected)",
        "cases[1] (A): name: already used by cases[0]",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["expected a mapping with a 'cases' list at the top level, got nothing"]),
        ("- a\n", ["expected a mapping with a 'cases' list at the top level, got a list"]),
        ("cases: []\n", ["cases: must list at least one case"]),
        (
            "today: someday\ncases: []\n",
            ["today: expected a date like 2027-01-31, got text ('someday')", "cases: must list at least one case"],
        ),
        ("policy: p.yaml\n", ["cases: missing; list at least one case"]),
        (
            "cases: [1]\ncase: []\n",
            [
                "case: unknown key; expected policy, today, cases",
                "cases[0]: expected a mapping with name, user and expect",
            ],
        ),
        ("cases: {a: 1}\n", ["cases: expected a list of cases"]),
        ("cases: [a\n", None),
    ],
)
def test_suite_level_mistakes(text, expected):
    """Problems outside cases name the top-level key; broken YAML is one line with its position."""
    problems = problems_of(text)
    if expected is None:
        assert problems[0].startswith("not valid YAML: line 2")
    else:
        assert problems == expected


def test_unreadable_suite_is_a_suite_error(tmp_path):
    """A suite file that does not exist is reported, not a traceback."""
    with pytest.raises(SuiteError) as caught:
        load_suite(tmp_path / "absent.yaml")
    assert caught.value.problems == ["cannot read the file: No such file or directory"]
    assert "invalid test suite" in str(caught.value)


# --- running --------------------------------------------------------------------------------------------

CASES = """\
    - name: clerk gets SMS
      user: {phone: "+8613800138000", departments: [finance]}
      expect: {finance-sms: "enforce [SMS]", admins-otp: not-matched}
    - name: clerk without phone falls back
      user: {email: a@acme.example, departments: [finance]}
      expect: {finance-sms: "enforce [EMAIL] (fallback for SMS)"}
    - name: pilot is exempt
      user: {departments: [finance], groups: [mfa-exempt]}
      expect: {finance-sms: exempt}
    - name: pilot after expiry
      today: 2027-02-01
      user: {phone: "+8613800138000", departments: [finance], groups: [mfa-exempt]}
      expect: {finance-sms: "enforce [SMS]"}
    - name: admin would get OTP
      user: {roles: [admin], mfa: [OTP]}
      expect: {admins-otp: compliant}
"""


def test_passing_cases_pass():
    """Each case is evaluated with its own (or the suite's) date; all expectations met means PASS."""
    result = run_suite(parse_suite(suite_text(CASES)), POLICY, today=TODAY)
    assert (result.passed, result.failed) == (5, 0)
    assert result.lines() == [
        "PASS clerk gets SMS",
        "PASS clerk without phone falls back",
        "PASS pilot is exempt",
        "PASS pilot after expiry",
        "PASS admin would get OTP",
        "5 passed, 0 failed",
    ]


def test_failing_case_shows_the_difference_and_why():
    """A failure names the rule, what was expected, what happened, the reasons and any expired exception."""
    text = suite_text("""\
        - name: wrong
          today: 2027-03-01
          user: {departments: [finance], groups: [mfa-exempt]}
          expect: {finance-sms: exempt, admins-otp: not-matched}
        """)
    result = run_suite(parse_suite(text), POLICY, today=TODAY)
    assert (result.passed, result.failed) == (0, 1)
    assert result.lines() == [
        "FAIL wrong",
        "     finance-sms: expected exempt, got unsatisfiable [SMS]",
        "       matched: department finance",
        "       SMS: no phone number on record; fallback EMAIL: no email address on record",
        "       exception expired 2027-01-31: pilot (group mfa-exempt)",
        "0 passed, 1 failed",
    ]


def test_the_callers_date_applies_when_the_suite_gives_none():
    """Without a date in the suite or case, exceptions expire against the date run_suite is given."""
    text = suite_text("""\
        - name: pilot
          user: {departments: [finance], groups: [mfa-exempt]}
          expect: {finance-sms: exempt}
        """)
    assert run_suite(parse_suite(text), POLICY, today=date(2027, 1, 31)).failed == 0
    assert run_suite(parse_suite(text), POLICY, today=date(2027, 2, 1)).failed == 1
    assert run_suite(parse_suite("today: 2027-01-01\n" + text), POLICY, today=date(2030, 1, 1)).failed == 0


def test_expecting_a_rule_the_policy_lacks_is_a_suite_error():
    """A misspelt or removed rule name is reported (by case) rather than silently skipped."""
    text = suite_text("""\
        - name: typo
          user: {}
          expect: {finance-smss: not-matched}
        """)
    with pytest.raises(SuiteError) as caught:
        run_suite(parse_suite(text, "suite.yaml"), POLICY, today=TODAY)
    assert caught.value.problems == [
        "cases[0] (typo): expect.finance-smss: the policy <string> has no such rule; "
        "its rules are finance-sms, admins-otp"
    ]


# --- the shipped suite ----------------------------------------------------------------------------------


def test_shipped_suite_passes_against_the_shipped_policy_and_covers_every_outcome():
    """config/policies.test.yaml names config/policies.yaml, passes, and expects every kind of outcome."""
    suite = load_suite(CONFIG / "policies.test.yaml")
    assert suite.policy == CONFIG / "policies.yaml"
    assert len(suite.cases) >= 8
    result = run_suite(suite, load_policy(CONFIG / "policies.yaml"), today=TODAY)
    assert result.failed == 0, "\n".join(result.lines())
    kinds = {expected.kind for case in suite.cases for _, expected in case.expect}
    assert kinds == set(OutcomeKind)
    assert any(expected.fallback for case in suite.cases for _, expected in case.expect)


def test_fixture_users_carry_contact_verification_and_country_codes():
    """phone_verified / email_verified / phone_country_code / mfa_phone_country_code reach the facts the
    outcomes judge: an unverified phone falls back, a phone with its country code enforces SMS."""
    text = suite_text("""\
        - name: unverified phone falls back
          user:
            email: a@acme.example
            phone: "13800138000"
            phone_country_code: "+86"
            phone_verified: false
            departments: [finance]
          expect: {finance-sms: "enforce [EMAIL] (fallback for SMS)"}
        - name: unverified email cannot stand in
          user: {email: a@acme.example, email_verified: false, departments: [finance]}
          expect: {finance-sms: "unsatisfiable [SMS]"}
        - name: stored MFA phone with its country code
          user: {mfa_phone: "13800138000", mfa_phone_country_code: "+86", departments: [finance]}
          expect: {finance-sms: "enforce [SMS]"}
        """)
    suite = parse_suite(text)
    facts = suite.cases[0].facts
    assert (facts.phone_country_code, facts.phone_verified, facts.email_verified) == ("+86", False, True)
    assert suite.cases[2].mfa_phone_country_code == "+86"
    result = run_suite(suite, POLICY, today=TODAY)
    assert (result.passed, result.failed) == (3, 0), result.lines()


def test_a_verification_flag_must_be_true_or_false():
    """phone_verified: "no" is refused with the line and what is expected."""
    text = suite_text("""\
        - name: bad flag
          user: {phone_verified: "no"}
          expect: {finance-sms: not-matched}
        """)
    with pytest.raises(SuiteError, match="expected true or false"):
        parse_suite(text)
