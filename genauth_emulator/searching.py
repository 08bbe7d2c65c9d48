"""Filtering and sorting users for `POST /api/v3/list-users` (docs/genauth.md §3.10): keyword search and
`advancedFilter` conditions, including the documented department filter. Called by `user_endpoints.list_users`.

Predicates and sort keys read the live `UserRecord`s (under the state's lock, inside `EmulatorState.listing`)
instead of building a copy of every user, so filtering 100,000 users is one pass over the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from genauth_emulator.directory import UnknownDepartmentError, UnknownOrganizationError
from genauth_emulator.records import UserRecord
from genauth_emulator.responses import ApiError
from genauth_emulator.state import EmulatorState

DEFAULT_FUZZY_FIELDS = ("phone", "email", "name", "username", "nickname")
_FIELD_NAMES = {"id": "userId"}
UserPredicate = Callable[[UserRecord], bool]


def record_field(record: UserRecord, name: str) -> Any:
    """The value a `UserDto` would show for `name` (a custom-data key when it is no profile field)."""
    if name == "userId":
        return record.user_id
    if name == "mainDepartmentId":
        return record.main_department_id()
    if name == "departmentIds":
        return list(record.memberships)
    if name in record.profile:
        return record.profile[name]
    return record.custom_data.get(name)


def keyword_predicate(keywords: str, fields: Sequence[str] | None) -> UserPredicate:
    """Match users with `keywords` (case-insensitive) inside any of `fields`."""
    needle = keywords.lower()
    names = [_FIELD_NAMES.get(name, name) for name in (fields or DEFAULT_FUZZY_FIELDS)]
    return lambda record: any(needle in str(record_field(record, name) or "").lower() for name in names)


def condition_predicate(state: EmulatorState, condition: Any) -> UserPredicate:
    """Turn one `{field, operator, value}` condition into a predicate over user records (custom data included)."""
    if not isinstance(condition, dict) or not isinstance(condition.get("field"), str):
        raise ApiError(400, "each advancedFilter entry needs a string field")
    field, operator, expected = condition["field"], condition.get("operator"), condition.get("value")
    if field == "department":
        if operator != "IN":
            raise ApiError(400, "the department filter supports only the IN operator")
        members = _department_members(state, expected)
        return lambda record: record.user_id in members
    compare = _OPERATORS.get(str(operator))
    if compare is None:
        raise ApiError(400, f"operator must be one of {', '.join(_OPERATORS)}")
    name = str(_FIELD_NAMES.get(field, field))

    def matches(record: UserRecord) -> bool:
        try:
            return compare(record_field(record, name), expected)
        except TypeError:
            return False

    return matches


def sort_key(field: str) -> Callable[[UserRecord], str]:
    """The key `options.sort` orders by: the field's value as text, missing values first."""
    name = _FIELD_NAMES.get(field, field)
    return lambda record: str(record_field(record, name) or "")


def _department_members(state: EmulatorState, references: Any) -> set[str]:
    if not isinstance(references, list):
        raise ApiError(400, "the department filter value must be an array")
    members: set[str] = set()
    for reference in references:
        if not isinstance(reference, dict):
            raise ApiError(400, "each department filter value must be an object")
        try:
            department_id = state.find_department(
                str(reference.get("organizationCode")),
                str(reference.get("departmentId")),
                str(reference.get("departmentIdType") or "department_id"),
            )
        except (UnknownOrganizationError, UnknownDepartmentError):
            continue  # an unknown department has no members
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        include_children = reference.get("includeChildrenDepartments") is True
        members.update(state.department_member_ids(department_id, include_children=include_children))
    return members


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return str(expected) in actual
    return isinstance(actual, list) and expected in actual


def _between(actual: Any, expected: Any) -> bool:
    if not isinstance(expected, list) or len(expected) != 2:
        raise ApiError(400, "BETWEEN needs a two-element array")
    return actual is not None and bool(expected[0] <= actual <= expected[1])


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL": lambda actual, expected: bool(actual == expected),
    "NOT_EQUAL": lambda actual, expected: bool(actual != expected),
    "CONTAINS": _contains,
    "NOT_CONTAINS": lambda actual, expected: not _contains(actual, expected),
    "IS_NULL": lambda actual, expected: actual in (None, ""),
    "NOT_NULL": lambda actual, expected: actual not in (None, ""),
    "IN": lambda actual, expected: isinstance(expected, list) and actual in expected,
    # GREATER and LESSER are inclusive, per the SDK's comments.
    "GREATER": lambda actual, expected: actual is not None and bool(actual >= expected),
    "LESSER": lambda actual, expected: actual is not None and bool(actual <= expected),
    "BETWEEN": _between,
}
