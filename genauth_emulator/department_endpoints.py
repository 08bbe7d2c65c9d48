"""Management API endpoints about departments: `get-user-departments` (§3.7) and
`list-department-members` (§3.11). Registered by `app.api_routes`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genauth_emulator.parsing import ApiCall, flag, lookup_user, member_views, paginated, query_page_and_limit, required
from genauth_emulator.responses import ApiError
from genauth_emulator.state import UnknownDepartmentError, UnknownOrganizationError

# sortBy value -> key of a get-user-departments entry (the SDK enum really spells it "DepartmemtCode").
_DEPARTMENT_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "JoinDepartmentAt": lambda item: 0,  # entries already come in join order
    "DepartmentCreatedAt": lambda item: item["createdAt"],
    "DepartmentName": lambda item: item["name"],
    "DepartmemtCode": lambda item: item["code"],
    "DepartmentCode": lambda item: item["code"],
}
_MEMBER_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "Default": lambda user: 0,
    "JoinDepartmentAt": lambda user: 0,  # member ids already come in join order
    "userId": lambda user: user["userId"],
    "createAt": lambda user: user["createdAt"],
    "updatedAt": lambda user: user["updatedAt"],
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
    """Answer one page of a department's members (its subtree's with `includeChildrenDepartments`)."""
    organization_code = required(call.args, "organizationCode")
    reference = required(call.args, "departmentId")
    page, limit = query_page_and_limit(call.args)
    key = _choose(_MEMBER_SORT_KEYS, call.args.get("sortBy", "JoinDepartmentAt"), "sortBy")
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
    member_ids = call.state.department_member_ids(
        department_id, include_children=flag(call.args, "includeChildrenDepartments")
    )
    users = member_views(call, member_ids)
    return paginated(_ordered(users, key, call.args.get("orderBy", "Desc")), page, limit)


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
