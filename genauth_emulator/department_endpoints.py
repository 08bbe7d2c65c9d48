"""Management API endpoints about departments: `get-user-departments` (§3.7) and
`list-department-members` (§3.11). Registered by `app.api_routes`.

A department's member listing is ordered once per state of the pool (`EmulatorState.listing`) and then served
page by page, so walking a department of 100,000 members is fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genauth_emulator.parsing import ApiCall, flag, lookup_user, member_page, paginated, query_page_and_limit, required
from genauth_emulator.records import UserRecord
from genauth_emulator.responses import ApiError
from genauth_emulator.state import UnknownDepartmentError, UnknownOrganizationError
from genauth_emulator.users import UserStore

# sortBy value -> key of a get-user-departments entry (the SDK enum really spells it "DepartmemtCode").
_DEPARTMENT_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "JoinDepartmentAt": lambda item: 0,  # entries already come in join order
    "DepartmentCreatedAt": lambda item: item["createdAt"],
    "DepartmentName": lambda item: item["name"],
    "DepartmemtCode": lambda item: item["code"],
    "DepartmentCode": lambda item: item["code"],
}
_MEMBER_SORT_KEYS: dict[str, Callable[[UserRecord], Any] | None] = {
    "Default": None,
    "JoinDepartmentAt": None,  # member ids already come in join order
    "userId": lambda record: record.user_id,
    "createAt": lambda record: record.profile["createdAt"],
    "updatedAt": lambda record: record.profile["updatedAt"],
}


def get_user_departments(call: ApiCall) -> dict[str, Any]:
    """Answer one page of the user's departments, with root-first paths when asked."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    page, limit = query_page_and_limit(call.args)
    items = call.state.user_departments(
        user_id,
        with_paths=flag(call.args, "withDepartmentPaths"),
        with_custom_data=flag(call.args, "withCustomData"),
    )
    key = _choose(_DEPARTMENT_SORT_KEYS, call.args.get("sortBy", "JoinDepartmentAt"), "sortBy")
    return paginated(_ordered(items, key, call.args.get("orderBy", "Desc")), page, limit)


def list_department_members(call: ApiCall) -> dict[str, Any]:
    """Answer one page of a department's members (its subtree's with `includeChildrenDepartments`), as
    `UserDto`s with `departmentIds`, `customData` and `identities` when the `with*` flags ask for them."""
    organization_code = required(call.args, "organizationCode")
    reference = required(call.args, "departmentId")
    query_page_and_limit(call.args)  # a bad page or limit is a 400 before anything is read
    sort_by = call.args.get("sortBy", "JoinDepartmentAt")
    if sort_by not in _MEMBER_SORT_KEYS:
        raise ApiError(400, f"sortBy must be one of {', '.join(_MEMBER_SORT_KEYS)}")
    order_by = call.args.get("orderBy", "Desc")
    if order_by not in ("Asc", "Desc"):
        raise ApiError(400, "orderBy must be Asc or Desc")
    try:
        department_id = call.state.find_department(
            organization_code, reference, call.args.get("departmentIdType", "department_id")
        )
    except UnknownOrganizationError:
        raise ApiError(404, f"Organization {organization_code} does not exist") from None
    except UnknownDepartmentError:
        raise ApiError(404, f"Department {reference} does not exist") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    include_children = flag(call.args, "includeChildrenDepartments")
    key = _MEMBER_SORT_KEYS[sort_by]

    def compute() -> list[str]:
        joined = call.state.department_member_ids(department_id, include_children=include_children)
        if key is not None:

            def by_key(users: UserStore) -> list[str]:
                return sorted(joined, key=lambda user_id: key(users.get(user_id)))  # stable: ties keep join order

            joined = call.state.read_users(by_key)
        if order_by == "Desc":
            joined.reverse()
        return joined

    listing_key = ("list-department-members", department_id, include_children, sort_by, order_by)
    return member_page(call, call.state.listing(listing_key, compute))


def _choose(
    keys: dict[str, Callable[[dict[str, Any]], Any]], name: str, parameter: str
) -> Callable[[dict[str, Any]], Any]:
    if name not in keys:
        raise ApiError(400, f"{parameter} must be one of {', '.join(keys)}")
    return keys[name]


def _ordered(items: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any], order_by: str) -> list[Any]:
    if order_by not in ("Asc", "Desc"):
        raise ApiError(400, "orderBy must be Asc or Desc")
    ordered = sorted(items, key=key)  # stable, so ties keep join order
    if order_by == "Desc":
        ordered.reverse()
    return ordered
