"""Loading the policy file: the example loads, input is normalised, and every mistake is reported by rule
and field, all at once, as one PolicyError."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.policy import Match, PolicyError, load_policy, parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "policies.yaml"

VALID_RULE = """\
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
"""


def policy_text(*rules: str) -> str:
    return "policies:\n" + "".join(textwrap.dedent(rule) for rule in rules)


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policies.yaml")
    return caught.value.problems


# --- what loads --------------------------------------------------------------------------------------


def test_example_policy_file_loads():
    """The shipped config/policies.yaml is valid and requires SMS of finance staff."""
    policy = load_policy(EXAMPLE)
    assert policy.source == str(EXAMPLE)
    [rule] = policy.rules
    assert rule.name == "finance-sms"
    assert rule.description == "Finance staff confirm sign-ins with an SMS code."
    assert rule.mode == "enforce"
    assert rule.match == Match(departments=("finance",))
    assert rule.require_mfa == ("SMS",)


def test_empty_policies_list_loads_as_a_policy_that_enforces_nothing():
    """`policies: []` is valid and means no rules."""
    policy = parse_policy("policies: []\n")
    assert policy.rules == ()
    assert policy.source == "<string>"


def test_description_and_mode_have_defaults():
    """A rule without description or mode gets an empty description and enforce mode."""
    [rule] = parse_policy(policy_text(VALID_RULE)).rules
    assert rule.description == ""
    assert rule.mode == "enforce"


def test_rules_keep_file_order():
    """Rules come back in the order the file lists them."""
    text = policy_text(
        VALID_RULE,
        """\
          - name: contractors-otp
            mode: audit
            match: {email_domains: [contractors.example]}
            require_mfa: [OTP]
        """,
    )
    assert [rule.name for rule in parse_policy(text).rules] == ["finance-sms", "contractors-otp"]
    assert parse_policy(text).rule("contractors-otp").mode == "audit"


def test_factors_are_case_insensitive_deduplicated_and_in_factor_order():
    """require_mfa accepts any case, drops repeats and lists factors in FACTORS order."""
    [rule] = parse_policy(
        policy_text("""\
          - name: r
            match: {departments: [x]}
            require_mfa: [face, otp, Sms, SMS]
        """)
    ).rules
    assert rule.require_mfa == ("SMS", "OTP", "FACE")


def test_mode_is_case_insensitive():
    """`mode: Audit` reads as audit."""
    [rule] = parse_policy(
        policy_text("""\
          - name: r
            mode: Audit
            match: {departments: [x]}
            require_mfa: [SMS]
        """)
    ).rules
    assert rule.mode == "audit"


def test_email_domains_are_lowercased_stripped_of_at_and_deduplicated():
    """`@Corp.Example.COM` and `corp.example.com` are the same domain."""
    [rule] = parse_policy(
        policy_text("""\
          - name: r
            match: {email_domains: ["@Corp.Example.COM", corp.example.com, xn--bcher-kva.example]}
            require_mfa: [EMAIL]
        """)
    ).rules
    assert rule.match.email_domains == ("corp.example.com", "xn--bcher-kva.example")


def test_department_entries_are_trimmed_and_deduplicated_keeping_case():
    """Department selectors keep their spelling (ids are case-sensitive) but lose repeats and padding."""
    [rule] = parse_policy(
        policy_text("""\
          - name: r
            match: {departments: [finance, " finance ", Finance, 60b49eb83fd80adb96f26e68]}
            require_mfa: [SMS]
        """)
    ).rules
    assert rule.match.departments == ("finance", "Finance", "60b49eb83fd80adb96f26e68")


def test_version_1_may_be_stated():
    """An explicit `version: 1` is accepted."""
    assert parse_policy("version: 1\npolicies: []\n").rules == ()


# --- what is refused, and how it is described -----------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        pytest.param(
            """\
            - name: finance-sms
              match: {departments: [finance]}
              require_mfa: [SMSS]
            """,
            "policies[0] (finance-sms): require_mfa[0]: 'SMSS' is not one of SMS, EMAIL, OTP, FACE",
            id="unknown-factor",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [finance]}
              require_mfa: []
            """,
            "policies[0] (r): require_mfa: must list at least one factor",
            id="no-factors",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [finance]}
            """,
            "policies[0] (r): require_mfa: missing; list at least one factor",
            id="missing-factors",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [finance]}
              require_mfa: SMS
            """,
            "policies[0] (r): require_mfa: expected a list of factors",
            id="factors-not-a-list",
        ),
        pytest.param(
            """\
            - name: Finance SMS
              match: {departments: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0] (Finance SMS): name: 'Finance SMS' must be 1 to 64 letters, digits or dashes, "
            "starting with a letter or digit",
            id="name-with-space",
        ),
        pytest.param(
            """\
            - name: -finance
              match: {departments: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0] (-finance): name: '-finance' must be 1 to 64 letters",
            id="name-leading-dash",
        ),
        pytest.param(
            f"""\
            - name: {"a" * 65}
              match: {{departments: [finance]}}
              require_mfa: [SMS]
            """,
            f"policies[0] ({'a' * 65}): name: '{'a' * 65}' must be 1 to 64 letters",
            id="name-too-long",
        ),
        pytest.param(
            """\
            - match: {departments: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0]: name: missing",
            id="missing-name",
        ),
        pytest.param(
            """\
            - name: 2024
              match: {departments: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0]: name: expected text, got a number (2024); put it in quotes",
            id="name-not-text",
        ),
        pytest.param(
            """\
            - name: r
              mode: enforced
              match: {departments: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): mode: 'enforced' is not one of enforce, audit",
            id="unknown-mode",
        ),
        pytest.param(
            """\
            - name: r
              description: [not, text]
              match: {departments: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): description: expected text, got a list",
            id="description-not-text",
        ),
        pytest.param(
            """\
            - name: r
              require_mfa: [SMS]
            """,
            "policies[0] (r): match: missing; give at least one of departments, email_domains",
            id="missing-match",
        ),
        pytest.param(
            """\
            - name: r
              match:
              require_mfa: [SMS]
            """,
            "policies[0] (r): match: must not be empty; give at least one of departments, email_domains",
            id="null-match",
        ),
        pytest.param(
            """\
            - name: r
              match: {}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match: give at least one of departments, email_domains; "
            "a rule matching every user is not supported",
            id="empty-match",
        ),
        pytest.param(
            """\
            - name: r
              match: [finance]
              require_mfa: [SMS]
            """,
            "policies[0] (r): match: expected a mapping with any of departments, email_domains",
            id="match-not-a-mapping",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [], email_domains: [corp.example.com]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match.departments: must list at least one department",
            id="empty-department-list",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [finance, ""]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match.departments[1]: must be a department code, name or id, not empty",
            id="empty-department",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [1001]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match.departments[0]: expected text, got a number (1001); put it in quotes",
            id="department-not-text",
        ),
        pytest.param(
            """\
            - name: r
              match: {email_domains: [corp]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match.email_domains[0]: 'corp' does not look like an email domain "
            "(like corp.example.com)",
            id="domain-without-dot",
        ),
        pytest.param(
            """\
            - name: r
              match: {email_domains: [alice@corp.example.com]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match.email_domains[0]: 'alice@corp.example.com' does not look like",
            id="address-instead-of-domain",
        ),
        pytest.param(
            """\
            - name: r
              match: {departments: [finance]}
              require_mfa: [SMS]
              requires_mfa: [OTP]
            """,
            "policies[0] (r): requires_mfa: unknown key; expected name, description, mode, match, require_mfa",
            id="unknown-rule-key",
        ),
        pytest.param(
            """\
            - name: r
              match: {department: [finance]}
              require_mfa: [SMS]
            """,
            "policies[0] (r): match.department: unknown key; expected departments, email_domains",
            id="unknown-match-key",
        ),
        pytest.param(
            """\
            - finance-sms
            """,
            "policies[0]: expected a mapping with name, match and require_mfa",
            id="rule-not-a-mapping",
        ),
        pytest.param(
            """\
            -
            """,
            "policies[0]: expected a rule, got nothing",
            id="empty-rule",
        ),
    ],
)
def test_each_mistake_is_reported_naming_rule_and_field(rule, expected):
    """Every validation failure gives one line naming the rule (by name, else position) and the field."""
    [problem] = problems_of(policy_text(rule))
    assert problem.startswith(expected)


def test_rule_is_named_by_position_when_it_has_no_usable_name():
    """Rules after the first are located by index, so the operator can find them without a name."""
    problems = problems_of(
        policy_text(
            VALID_RULE,
            """\
              - name: ""
                match: {departments: [x]}
                require_mfa: [SMS]
            """,
        )
    )
    assert problems == [
        "policies[1]: name: '' must be 1 to 64 letters, digits or dashes, starting with a letter or digit"
    ]


def test_all_problems_are_collected_in_file_order():
    """One load reports every problem in every rule, ordered by rule, not just the first."""
    problems = problems_of(
        policy_text(
            """\
              - name: b
                mode: sometimes
                match: {departments: []}
                require_mfa: [SMSS, OTP]
            """,
            VALID_RULE,
            """\
              - name: a
                match: {email_domains: [nodot]}
                require_mfa: []
            """,
        )
    )
    assert problems == [
        "policies[0] (b): mode: 'sometimes' is not one of enforce, audit",
        "policies[0] (b): match.departments: must list at least one department",
        "policies[0] (b): require_mfa[0]: 'SMSS' is not one of SMS, EMAIL, OTP, FACE",
        "policies[2] (a): match.email_domains[0]: 'nodot' does not look like an email domain (like corp.example.com)",
        "policies[2] (a): require_mfa: must list at least one factor",
    ]


def test_unknown_keys_are_reported_in_a_stable_order():
    """Several unknown keys in one rule are listed by name, the same way on every run."""
    problems = problems_of(
        policy_text("""\
          - name: r
            zeta: 1
            alpha: 2
            match: {departments: [x]}
            require_mfa: [SMS]
        """)
    )
    assert [problem.split(":")[1].strip() for problem in problems] == ["alpha", "zeta"]


def test_duplicate_rule_names_are_refused_ignoring_case():
    """Two rules may not share a name, even spelt with different case; the later one is blamed."""
    problems = problems_of(policy_text(VALID_RULE, VALID_RULE.replace("finance-sms", "Finance-SMS")))
    assert problems == ["policies[1] (Finance-SMS): name: already used by policies[0]"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "polices: []\n",
            [
                "policies: missing; the file needs a 'policies' list (write 'policies: []' to enforce nothing)",
                "polices: unknown key; expected policies (and optionally version)",
            ],
        ),
        (
            "version: 1\n",
            ["policies: missing; the file needs a 'policies' list (write 'policies: []' to enforce nothing)"],
        ),
        ("policies:\n", ["policies: must be a list of rules (write 'policies: []' to enforce nothing)"]),
        ("policies: {name: r}\n", ["policies: expected a list of rules"]),
        ("version: 2\npolicies: []\n", ["version: only version 1 is supported, not 2"]),
        ("version: one\npolicies: []\n", ["version: expected the number 1"]),
    ],
)
def test_top_level_mistakes_name_the_key(text, expected):
    """Problems outside any rule name the top-level key; unknown top-level keys are refused."""
    assert problems_of(text) == expected


def test_error_message_lists_the_file_and_every_problem_indented():
    """str(PolicyError) is a header naming the file followed by one indented line per problem."""
    with pytest.raises(PolicyError) as caught:
        parse_policy("policies: [{name: r, match: {}, require_mfa: []}]\n", "config/policies.yaml")
    error = caught.value
    assert isinstance(error, ConfigurationError)
    assert error.source == "config/policies.yaml"
    assert str(error) == (
        "invalid policy file config/policies.yaml:\n"
        "  policies[0] (r): match: give at least one of departments, email_domains; "
        "a rule matching every user is not supported\n"
        "  policies[0] (r): require_mfa: must list at least one factor"
    )
    assert error.reason == "invalid_policy"


# --- files that are not policy documents ----------------------------------------------------------------


def test_missing_file_is_a_policy_error(tmp_path):
    """A policy file that does not exist stops startup with a PolicyError, not a traceback."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == ["cannot read the file: No such file or directory"]


def test_file_that_is_not_utf8_is_a_policy_error(tmp_path):
    """Bytes that are not UTF-8 are reported as such."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"policies: []\n# caf\xe9\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems[0].startswith("the file is not UTF-8 text")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file_is_a_policy_error(tmp_path, text):
    """An empty file is refused with a hint, rather than taken to mean "no rules"."""
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == ["the file is empty; write 'policies: []' to enforce nothing"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- finance-sms\n", "a list"), ("finance\n", "text ('finance')"), ("3\n", "a number (3)")],
)
def test_top_level_that_is_not_a_mapping_is_a_policy_error(text, kind):
    """The document must be a mapping; a list or scalar is named in the message."""
    assert problems_of(text) == [f"expected a mapping with a 'policies' list at the top level, got {kind}"]


def test_yaml_syntax_error_gives_line_and_column():
    """Broken YAML is reported with its position, not as a raw parser traceback."""
    [problem] = problems_of("policies:\n  - name: r\n    match: {departments: [finance}\n")
    assert problem.startswith("not valid YAML: line 3, column ")


def test_key_written_twice_is_an_error():
    """A repeated key would silently replace the first; it is reported with its line instead."""
    [problem] = problems_of(
        policy_text("""\
          - name: r
            match: {departments: [finance]}
            require_mfa: [SMS]
            require_mfa: [OTP]
        """)
    )
    assert problem == (
        "not valid YAML: line 5, column 3: found duplicate key 'require_mfa' (while constructing a mapping)"
    )


def test_unsafe_yaml_tags_are_refused():
    """Only plain YAML is read: a Python object tag is a syntax problem, never executed."""
    [problem] = problems_of("policies: !!python/object/apply:os.system [echo hi]\n")
    assert problem.startswith("not valid YAML: ")
