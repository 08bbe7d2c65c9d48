"""Matching one block against a user: every condition of the rule language, the combinators, and the
reasons each gives, held or failed."""

from __future__ import annotations

import pytest

from service.policy import Department, Match, Role, UserFacts, ValueTest
from service.policy.conditions import judge

FINANCE = Department(department_id="dep-fin", code="finance", name="Finance")
PAYROLL = Department(
    department_id="dep-pay",
    code="finance-payroll",
    name="Payroll",
    ancestor_ids=("dep-root", "dep-fin"),
    ancestor_codes=("acme", "finance"),
    ancestor_names=("ACME", "Finance"),
)


def user(**overrides: object) -> UserFacts:
    values: dict[str, object] = {
        "user_id": "u-1",
        "email": "li.na@acme.example",
        "status": "Activated",
        "departments": (FINANCE,),
        "groups": ("contractors",),
        "roles": (Role("admin"), Role("approver", "finance-app")),
        "custom_data": {"costCenter": "FIN-01", "level": "L5", "headcount": 5, "vip": True, "blank": ""},
    }
    values.update(overrides)
    return UserFacts(**values)


# --- departments ----------------------------------------------------------------------------------------


def test_direct_members_only_when_sub_departments_are_excluded():
    """include_subdepartments=False matches members of the department itself, not of its sub-departments."""
    match = Match(departments=("finance",), include_subdepartments=False)
    assert judge(match, user(departments=(FINANCE,))) == (True, ["department finance"])
    assert judge(match, user(departments=(PAYROLL,))) == (False, ["not directly in any of departments [finance]"])


def test_sub_departments_are_included_by_default():
    """Without include_subdepartments, a Payroll member matches a Finance rule through the ancestor."""
    assert judge(Match(departments=("finance",)), user(departments=(PAYROLL,))) == (
        True,
        ["department finance (via ancestor of finance-payroll)"],
    )


# --- groups and roles -----------------------------------------------------------------------------------


def test_group_matches_by_code_ignoring_case():
    """A group selector matches one of the user's group codes, whatever the case; the reason names it."""
    assert judge(Match(groups=("Contractors", "interns")), user()) == (True, ["group Contractors"])


def test_user_in_none_of_the_groups_does_not_match():
    """A user outside every listed group is told which groups were looked for."""
    assert judge(Match(groups=("interns",)), user()) == (False, ["not in any of groups [interns]"])


def test_role_matches_code_and_namespace():
    """A bare role code means the default namespace; a namespaced role must match both parts."""
    assert judge(Match(roles=(Role("admin"),)), user()) == (True, ["role admin"])
    assert judge(Match(roles=(Role("approver", "finance-app"),)), user()) == (
        True,
        ["role approver (namespace finance-app)"],
    )


def test_role_in_another_namespace_does_not_match():
    """approver in the default namespace is not approver in finance-app."""
    assert judge(Match(roles=(Role("approver"), Role("admin", "hr-app"))), user()) == (
        False,
        ["has none of roles [approver, admin (namespace hr-app)]"],
    )


# --- the user record ------------------------------------------------------------------------------------


def test_status_is_any_of_ignoring_case():
    """status matches when the user's status is listed; a failure names the actual and the allowed ones."""
    assert judge(Match(status=("Activated",)), user()) == (True, ["status Activated"])
    assert judge(Match(status=("Activated",)), user(status="Suspended")) == (
        False,
        ["status Suspended is not one of [Activated]"],
    )
    assert judge(Match(status=("Activated",)), user(status=None)) == (False, ["no status, so not one of [Activated]"])


def test_user_source_type_accepts_the_sdk_spelling_of_sync_task():
    """userSourceType `sync` (the SDK's enum) counts as syncTask."""
    match = Match(user_source_type=("syncTask",))
    assert judge(match, user(user_source_type="sync")) == (True, ["userSourceType syncTask"])
    assert judge(match, user(user_source_type="adminCreated"))[0] is False


def test_register_source_is_any_of_against_the_users_list():
    """register_source matches when any of the user's sources is listed."""
    match = Match(register_source=("import:manual", "social:github"))
    assert judge(match, user(register_source=("basic:email", "import:manual"))) == (
        True,
        ["registerSource import:manual"],
    )
    assert judge(match, user(register_source=("basic:email",))) == (
        False,
        ["registerSource [basic:email] has none of [import:manual, social:github]"],
    )
    assert judge(match, user()) == (False, ["no registerSource, so none of [import:manual, social:github]"])


@pytest.mark.parametrize(
    ("test", "external_id", "expected"),
    [
        (ValueTest.exists(), "EMP-1", (True, ["externalId is set"])),
        (ValueTest.exists(), None, (False, ["externalId is not set"])),
        (ValueTest.exists(), "  ", (False, ["externalId is not set"])),
        (ValueTest.exists(False), None, (True, ["externalId is not set"])),
        (ValueTest.exists(False), "EMP-1", (False, ["externalId is set"])),
        (ValueTest.equal_to("EMP-1"), "EMP-1", (True, ["externalId = EMP-1"])),
        (ValueTest.equal_to("EMP-1"), "emp-1", (False, ["externalId is emp-1, not EMP-1"])),
        (ValueTest.equal_to("EMP-1"), None, (False, ["externalId is not set, so not EMP-1"])),
        (ValueTest.one_of("A", "B"), "B", (True, ["externalId = B"])),
        (ValueTest.one_of("A", "B"), "C", (False, ["externalId is C, not one of [A, B]"])),
    ],
)
def test_external_id_value_tests(test, external_id, expected):
    """external_id supports exists (true/false), equals (exact) and in, each with a precise reason."""
    assert judge(Match(external_id=test), user(external_id=external_id)) == expected


# --- custom data ----------------------------------------------------------------------------------------


def test_custom_data_tests_must_all_hold():
    """Every custom_data key must pass its test; the reasons show each value."""
    match = Match(
        custom_data=(
            ("costCenter", ValueTest.equal_to("FIN-01")),
            ("level", ValueTest.one_of("L5", "L6")),
            ("vip", ValueTest.exists()),
        )
    )
    assert judge(match, user()) == (
        True,
        ["customData.costCenter = FIN-01", "customData.level = L5", "customData.vip is set"],
    )
    failed = judge(match, user(custom_data={"costCenter": "FIN-02", "level": "L5"}))
    assert failed == (False, ["customData.costCenter is FIN-02, not FIN-01", "customData.vip is not set"])


@pytest.mark.parametrize(
    ("wanted", "actual", "holds"),
    [
        (5, 5, True),
        (5, 5.0, True),
        (5, "5", False),
        ("5", 5, False),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        ("FIN-01", "FIN-01", True),
    ],
)
def test_custom_data_values_compare_by_type(wanted, actual, holds):
    """Numbers equal numbers, booleans booleans, text text; text never equals a number."""
    match = Match(custom_data=(("value", ValueTest.equal_to(wanted)),))
    assert judge(match, user(custom_data={"value": actual}))[0] is holds


def test_empty_text_does_not_exist_in_custom_data():
    """A key holding empty text counts as not set."""
    assert judge(Match(custom_data=(("blank", ValueTest.exists()),)), user()) == (
        False,
        ["customData.blank is not set"],
    )


# --- combinators ----------------------------------------------------------------------------------------


def test_not_holds_when_its_block_does_not():
    """`not` inverts a block: a contractor fails `not: groups [contractors]`, naming what matched."""
    match = Match(departments=("finance",), negated=Match(groups=("contractors",)))
    assert judge(match, user()) == (False, ["not: group contractors matched"])
    assert judge(match, user(groups=())) == (True, ["department finance", "not: not in any of groups [contractors]"])


def test_any_holds_when_one_block_does():
    """`any` holds with the reasons of the first block that held; otherwise it counts the failures."""
    match = Match(any_of=(Match(groups=("interns",)), Match(roles=(Role("admin"),))))
    assert judge(match, user()) == (True, ["any: role admin"])
    assert judge(match, user(roles=())) == (
        False,
        ["any: none of 2 conditions held (not in any of groups [interns]; has none of roles [admin])"],
    )


def test_all_needs_every_block():
    """`all` holds with every block's reasons; a failure is prefixed with `all:`."""
    match = Match(all_of=(Match(departments=("finance",)), Match(groups=("contractors",))))
    assert judge(match, user()) == (True, ["department finance", "group contractors"])
    assert judge(match, user(groups=())) == (False, ["all: not in any of groups [contractors]"])


def test_combinators_nest():
    """Blocks nest to any depth: finance members who are not (contractors without the admin role)."""
    match = Match(
        departments=("finance",),
        negated=Match(groups=("contractors",), negated=Match(roles=(Role("admin"),))),
    )
    assert judge(match, user())[0] is True  # a contractor, but an admin
    assert judge(match, user(roles=()))[0] is False


def test_every_condition_is_judged_so_reasons_are_complete():
    """A block with several failing conditions lists each failure, not just the first."""
    match = Match(groups=("interns",), status=("Suspended",))
    assert judge(match, user()) == (
        False,
        ["not in any of groups [interns]", "status Activated is not one of [Suspended]"],
    )
