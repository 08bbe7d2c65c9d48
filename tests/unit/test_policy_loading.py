"""Loading the policy file: the example loads, input is normalised, and every mistake is reported by rule
and field, all at once, as one PolicyError."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.policy import Exemption, Fact, Match, PolicyError, Role, ValueTest, load_policy, parse_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "policies.yaml"

CONDITIONS = (
    "departments, groups, roles, email_domains, status, external_id, user_source_type, register_source, "
    "custom_data, identity_providers, all, any, not"
)
MATCH_KEYS_TEXT = CONDITIONS.replace("departments, ", "departments, include_subdepartments, ", 1)

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
    """The shipped config/policies.yaml requires SMS of finance staff; every further example only audits and
    needs no fact beyond departments, so the sandbox enforces exactly finance-sms at no extra API cost."""
    policy = load_policy(EXAMPLE)
    assert policy.source == str(EXAMPLE)
    rule, *examples = policy.rules
    assert rule.name == "finance-sms"
    assert rule.description == "Finance staff confirm sign-ins with an SMS code."
    assert rule.mode == "enforce"
    assert rule.match == Match(departments=("finance",))
    assert rule.require_mfa == ("SMS",)
    assert (rule.fallback, rule.exceptions) == ((), ())
    assert examples and all(example.mode == "audit" for example in examples)
    assert policy.needs == {Fact.DEPARTMENTS}


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
            f"policies[0] (r): match: missing; give at least one of {CONDITIONS}",
            id="missing-match",
        ),
        pytest.param(
            """\
            - name: r
              match:
              require_mfa: [SMS]
            """,
            f"policies[0] (r): match: must not be empty; give at least one of {CONDITIONS}",
            id="null-match",
        ),
        pytest.param(
            """\
            - name: r
              match: {}
              require_mfa: [SMS]
            """,
            f"policies[0] (r): match: give at least one of {CONDITIONS}; a rule matching every user is not supported",
            id="empty-match",
        ),
        pytest.param(
            """\
            - name: r
              match: [finance]
              require_mfa: [SMS]
            """,
            f"policies[0] (r): match: expected a mapping with any of {CONDITIONS}",
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
            "policies[0] (r): requires_mfa: unknown key; expected name, description, mode, match, require_mfa, "
            "fallback, exceptions",
            id="unknown-rule-key",
        ),
        pytest.param(
            """\
            - name: r
              match: {department: [finance]}
              require_mfa: [SMS]
            """,
            f"policies[0] (r): match.department: unknown key; expected {MATCH_KEYS_TEXT}",
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
                "polices: unknown key; expected policies (and optionally version, protected)",
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
        f"  policies[0] (r): match: give at least one of {CONDITIONS}; a rule matching every user is not supported\n"
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


# --- the rule language's further keys -------------------------------------------------------------------

FULL_RULE = """\
  - name: finance-sms
    match:
      departments: [finance]
      include_subdepartments: false
      groups: [contractors, Contractors]
      roles: [admin, {code: approver, namespace: finance-app}, {code: auditor}]
      email_domains: [corp.example.com]
      status: [activated, Suspended]
      external_id: {exists: true}
      user_source_type: [adminCreated, sync]
      register_source: [import:manual]
      custom_data: {costCenter: {equals: FIN-01}, level: {in: [L5, L6, L5]}, vip: {exists: false}, n: {equals: 5}}
      all: [{groups: [a]}, {departments: [b]}]
      any: [{status: [Resigned]}]
      not: {groups: [interns]}
    require_mfa: [SMS]
    fallback: [email, OTP, EMAIL]
    exceptions:
      - users: [65a1f0c2e4b0a1b2c3d4e5f6]
        groups: [mfa-exempt]
        reason: "Hardware token pilot"
        expires: 2027-01-31
      - groups: [break-glass]
        reason: Emergency accounts
        expires: "2027-06-30"
"""


def test_every_key_of_the_language_loads_into_the_rule():
    """All match keys, fallback and exceptions load, normalised (case, repeats, aliases, dates)."""
    [rule] = parse_policy(policy_text(FULL_RULE)).rules
    match = rule.match
    assert match.departments == ("finance",) and match.include_subdepartments is False
    assert match.groups == ("contractors",)
    assert match.roles == (Role("admin"), Role("approver", "finance-app"), Role("auditor"))
    assert match.status == ("Activated", "Suspended")
    assert match.external_id == ValueTest.exists()
    assert match.user_source_type == ("adminCreated", "syncTask")
    assert match.register_source == ("import:manual",)
    assert match.custom_data == (
        ("costCenter", ValueTest.equal_to("FIN-01")),
        ("level", ValueTest.one_of("L5", "L6")),
        ("vip", ValueTest.exists(False)),
        ("n", ValueTest.equal_to(5)),
    )
    assert match.all_of == (Match(groups=("a",)), Match(departments=("b",)))
    assert match.any_of == (Match(status=("Resigned",)),)
    assert match.negated == Match(groups=("interns",))
    assert rule.fallback == ("EMAIL", "OTP")
    assert rule.exceptions == (
        Exemption(
            reason="Hardware token pilot",
            users=("65a1f0c2e4b0a1b2c3d4e5f6",),
            groups=("mfa-exempt",),
            expires=date(2027, 1, 31),
        ),
        Exemption(reason="Emergency accounts", groups=("break-glass",), expires=date(2027, 6, 30)),
    )


def test_a_match_of_only_combinators_is_a_match():
    """A rule may match on `any` alone; `exceptions: []` means none."""
    [rule] = parse_policy(
        policy_text("""\
          - name: r
            match: {any: [{groups: [a]}, {roles: [b]}]}
            require_mfa: [OTP]
            exceptions: []
        """)
    ).rules
    assert rule.match.conditions == ("any",)
    assert rule.exceptions == ()


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        pytest.param(
            "{all: [{groups: [a]}, {custom_data: {level: {between: [1, 2]}}}]}",
            ["match.all[1].custom_data.level.between: unknown key; expected one of equals, in, exists"],
            id="unknown-operator-deep",
        ),
        pytest.param(
            "{all: [{groups: [a]}, {custom_data: {level: {}}}]}",
            ["match.all[1].custom_data.level: expected one of equals, in, exists"],
            id="no-operator",
        ),
        pytest.param(
            "{custom_data: {level: L5}}",
            ["match.custom_data.level: expected a mapping with one of equals, in, exists (like {equals: L5})"],
            id="bare-value",
        ),
        pytest.param(
            "{custom_data: {level: {equals: L5, in: [L6]}}}",
            ["match.custom_data.level: give only one of equals, in, exists"],
            id="two-operators",
        ),
        pytest.param(
            "{custom_data: {vip: {exists: yes please}}}",
            ["match.custom_data.vip.exists: expected true or false, got text ('yes please')"],
            id="exists-not-boolean",
        ),
        pytest.param(
            "{custom_data: {level: {in: []}}}",
            ["match.custom_data.level.in: must list at least one value"],
            id="empty-in",
        ),
        pytest.param(
            "{custom_data: {d: {equals: 2024-01-01}}}",
            [
                "match.custom_data.d.equals: expected text, a number or true/false, got a date (2024-01-01); "
                "put it in quotes"
            ],
            id="date-value",
        ),
        pytest.param("{custom_data: {}}", ["match.custom_data: give at least one custom data key"], id="no-keys"),
        pytest.param(
            "{external_id: {equals: 417}}",
            ["match.external_id.equals: expected text, got a number (417); put it in quotes"],
            id="external-id-number",
        ),
        pytest.param(
            "{groups: [a], not: {}}",
            [f"match.not: an empty match block is not allowed; give at least one of {CONDITIONS}"],
            id="empty-not",
        ),
        pytest.param(
            "{groups: [a], not: }",
            [f"match.not: must not be empty; give a match block with any of {CONDITIONS}"],
            id="null-not",
        ),
        pytest.param("{all: []}", ["match.all: must list at least one match block"], id="empty-all"),
        pytest.param("{any: [null]}", ["match.any[0]: expected a match block, got nothing"], id="null-in-any"),
        pytest.param(
            "{any: [{}]}",
            [f"match.any[0]: an empty match block is not allowed; give at least one of {CONDITIONS}"],
            id="empty-block-in-any",
        ),
        pytest.param(
            "{groups: [a], include_subdepartments: false}",
            ["match.include_subdepartments: applies only together with departments"],
            id="subdepartments-alone",
        ),
        pytest.param(
            "{departments: [a], include_subdepartments: 0}",
            ["match.include_subdepartments: expected true or false, got a number (0)"],
            id="subdepartments-not-boolean",
        ),
        pytest.param(
            "{roles: [{code: a, ns: b}, {namespace: x}, 3]}",
            [
                "match.roles[0].ns: unknown key; expected code, namespace",
                "match.roles[1].code: missing",
                "match.roles[2]: expected a role code or {code, namespace}, got a number (3)",
            ],
            id="bad-roles",
        ),
        pytest.param(
            "{status: [Active]}",
            ["match.status[0]: 'Active' is not one of Activated, Suspended, Deactivated, Resigned, Archived"],
            id="unknown-status",
        ),
        pytest.param(
            "{user_source_type: [ldap]}",
            ["match.user_source_type[0]: 'ldap' is not one of excel, register, adminCreated, syncTask"],
            id="unknown-source-type",
        ),
    ],
)
def test_mistakes_in_the_new_match_keys_name_the_path(match, expected):
    """Each mistake in the new keys is one line with the rule, the full field path and what was expected."""
    text = policy_text(f"""\
      - name: x
        match: {match}
        require_mfa: [SMS]
    """)
    assert problems_of(text) == [f"policies[0] (x): {line}" for line in expected]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            "fallback: [SMS, TOTP]",
            [
                "fallback[1]: 'TOTP' is not one of SMS, EMAIL, OTP, FACE",
                "fallback: SMS already in require_mfa; a fallback stands in for a required factor",
            ],
            id="bad-fallback",
        ),
        pytest.param("fallback: []", ["fallback: must list at least one fallback factor"], id="empty-fallback"),
        pytest.param(
            "exceptions: [{reason: pilot}]",
            ["exceptions[0]: give users or groups (or both) to exempt"],
            id="exempts-nobody",
        ),
        pytest.param(
            "exceptions: [{users: [u1]}]",
            ["exceptions[0].reason: missing; say why they are exempt"],
            id="no-reason",
        ),
        pytest.param(
            "exceptions: [{users: [u1], reason: ' '}]",
            ["exceptions[0].reason: must be a reason, not empty"],
            id="blank-reason",
        ),
        pytest.param(
            "exceptions: [{users: [u1], reason: r, expires: 2027-13-01}]",
            ["exceptions[0].expires: expected a date like 2027-01-31, got text ('2027-13-01')"],
            id="impossible-date",
        ),
        pytest.param(
            "exceptions: [{users: [u1], reason: r, expires: soon}]",
            ["exceptions[0].expires: expected a date like 2027-01-31, got text ('soon')"],
            id="not-a-date",
        ),
        pytest.param(
            "exceptions: [{users: [u1], reason: r, expires: 2027-01-31 10:00:00}]",
            ["exceptions[0].expires: expected a date like 2027-01-31, got a date (2027-01-31T10:00:00)"],
            id="date-time",
        ),
        pytest.param(
            "exceptions: [{users: [u1], reason: r, until: 2027-01-31}]",
            ["exceptions[0].until: unknown key; expected users, groups, reason, expires"],
            id="unknown-exception-key",
        ),
        pytest.param("exceptions: {users: [u1]}", ["exceptions: expected a list of exceptions"], id="not-a-list"),
    ],
)
def test_mistakes_in_fallback_and_exceptions_name_the_path(extra, expected):
    """fallback and exceptions are validated like the rest: every problem, with its path."""
    text = policy_text(f"""\
      - name: x
        match: {{departments: [finance]}}
        require_mfa: [SMS]
        {extra}
    """)
    assert problems_of(text) == [f"policies[0] (x): {line}" for line in expected]


def test_problems_at_every_depth_are_collected_in_one_pass():
    """Nested mistakes in several rules are all reported, in file order."""
    problems = problems_of(
        policy_text(
            """\
              - name: a
                match: {not: {custom_data: {level: {in: [L5, [x]]}}}}
                require_mfa: [SMS]
            """,
            VALID_RULE.replace("finance-sms", "b"),
            """\
              - name: c
                match: {any: [{groups: []}]}
                require_mfa: [OTP]
                exceptions: [{groups: [x]}]
            """,
        )
    )
    assert problems == [
        "policies[0] (a): match.not.custom_data.level.in[1]: expected text, a number or true/false, got a list",
        "policies[2] (c): match.any[0].groups: must list at least one group code",
        "policies[2] (c): exceptions[0].reason: missing; say why they are exempt",
    ]
