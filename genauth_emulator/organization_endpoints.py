"""Management API endpoints that read the organization tree: `list-organizations` (paged), `get-department`
(§3.12, by id, by code or `root`), `get-all-departments` (§3.12: a department and everything under it, not
paged) and `search-departments` (§3.13, by name). Registered by `app.api_routes`.

They read the directory through `EmulatorState.read_directory`, which holds the pool's lock, and build the
v3 `OrganizationDto` / `DepartmentDto` shapes from copies, with the types the SDK models declare
(`authing-node-sdk` `src/models/OrganizationDto.ts`, `DepartmentDto.ts`): an organization's `status` is a
string (`"true"`; the reference sample shows `"false"`), and a root department's `parentDepartmentId` is
`"root"` (the SDK's word for the root) and its `parentDepartmentCode` an empty string, never null.
"""

from __future__ import annotations

from typing import Any

from genauth_emulator.directory import Directory
from genauth_emulator.parsing import ApiCall, flag, json_object, paginated, query_page_and_limit, required
from genauth_emulator.records import Department
from genauth_emulator.responses import ApiError
from genauth_emulator.state import EmulatorState, UnknownDepartmentError, UnknownOrganizationError

#: What a root department names as its parent: strings, as `DepartmentDto` declares them.
ROOT_PARENT_ID = "root"
ROOT_PARENT_CODE = ""


def list_organizations(call: ApiCall) -> dict[str, Any]:
    """Answer one page of organizations, oldest first (`fetchAll` answers them all)."""
    page, limit = query_page_and_limit(call.args)
    organizations = call.state.read_directory(_organizations)
    for organization in organizations:
        organization["membersCount"] = len(
            call.state.department_member_ids(organization["departmentId"], include_children=True)
        )
    if flag(call.args, "fetchAll"):
        return {"totalCount": len(organizations), "list": organizations}
    return paginated(organizations, page, limit)


def get_department(call: ApiCall) -> dict[str, Any]:
    """Answer one `DepartmentDto`, named by `departmentCode`, or by `departmentId` as `departmentIdType` says."""
    organization_code = required(call.args, "organizationCode")
    code = call.args.get("departmentCode", "").strip()
    reference = code or required(call.args, "departmentId")
    id_type = "code" if code else call.args.get("departmentIdType", "department_id")
    try:
        department_id = call.state.find_department(organization_code, reference, id_type)
    except UnknownOrganizationError:
        raise ApiError(404, f"Organization {organization_code} does not exist") from None
    except UnknownDepartmentError:
        raise ApiError(404, f"Department {reference} does not exist") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    views = _department_views(call.state, [department_id], with_custom_data=flag(call.args, "withCustomData"))
    return views[0]


def get_all_departments(call: ApiCall) -> dict[str, Any]:
    """Answer `{totalCount, list}` of the department `departmentId` names (default `root`) and every department
    under it, parents before children (the emulator's choice: whether GenAuth includes the department itself
    is not documented)."""
    organization_code = required(call.args, "organizationCode")
    reference = call.args.get("departmentId", "").strip() or "root"
    id_type = call.args.get("departmentIdType", "department_id")
    try:
        top = call.state.find_department(organization_code, reference, id_type)
    except UnknownOrganizationError:
        raise ApiError(404, f"Organization {organization_code} does not exist") from None
    except UnknownDepartmentError:
        raise ApiError(404, f"Department {reference} does not exist") from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None

    def subtree(directory: Directory) -> list[str]:
        found, frontier = [top], [top]
        while frontier:
            frontier = [d.id for d in directory.departments.values() if d.parent_id in frontier]
            found.extend(frontier)
        return found

    found = call.state.read_directory(subtree)
    views = _department_views(call.state, found, with_custom_data=flag(call.args, "withCustomData"))
    return {"totalCount": len(views), "list": views}


def search_departments(call: ApiCall) -> list[dict[str, Any]]:
    """Answer (a plain array) the organization's departments whose name contains `keywords`, ignoring case."""
    body = json_object(call.body)
    keywords, organization_code = body.get("keywords"), body.get("organizationCode")
    if not isinstance(keywords, str) or not keywords.strip():
        raise ApiError(400, "keywords is required")
    if not isinstance(organization_code, str) or not organization_code:
        raise ApiError(400, "organizationCode is required")
    needle = keywords.strip().casefold()

    def matching(directory: Directory) -> list[str]:
        directory.organization(organization_code)
        return [
            department.id
            for department in directory.departments.values()
            if department.organization_code == organization_code and needle in department.name.casefold()
        ]

    try:
        found = call.state.read_directory(matching)
    except UnknownOrganizationError:
        raise ApiError(404, f"Organization {organization_code} does not exist") from None
    return _department_views(call.state, found, with_custom_data=body.get("withCustomData") is True)


def _organizations(directory: Directory) -> list[dict[str, Any]]:
    views: list[dict[str, Any]] = []
    for root in directory.departments.values():
        if not root.is_root:
            continue
        organization = directory.organization(root.organization_code)
        views.append(
            {
                "organizationCode": organization.code,
                "organizationName": organization.name,
                "description": root.description,
                "departmentId": root.id,
                "openDepartmentId": None,
                "hasChildren": _has_children(directory, root),
                "leaderUserIds": [],
                "membersCount": 0,
                "isVirtualNode": False,
                "createdAt": organization.created_at,
                "updatedAt": root.updated_at,
                "postIdList": [],
                "status": "true",
            }
        )
    return views


def _department_views(
    state: EmulatorState, department_ids: list[str], *, with_custom_data: bool
) -> list[dict[str, Any]]:
    def build(directory: Directory) -> list[dict[str, Any]]:
        return [_department_dto(directory, directory.departments[item]) for item in department_ids]

    views = state.read_directory(build)
    for view in views:
        view["membersCount"] = state.direct_member_count(view["departmentId"])
        if with_custom_data:
            view["customData"] = {}
    return views


def _department_dto(directory: Directory, department: Department) -> dict[str, Any]:
    parent = directory.departments[department.parent_id] if department.parent_id else None
    return {
        "organizationCode": department.organization_code,
        "departmentId": department.id,
        "createdAt": department.created_at,
        "updatedAt": department.updated_at,
        "openDepartmentId": None,
        "name": department.name,
        "leaderUserIds": [],
        "description": department.description,
        "parentDepartmentId": parent.id if parent else ROOT_PARENT_ID,
        "code": department.code,
        "parentDepartmentCode": parent.code if parent else ROOT_PARENT_CODE,
        "membersCount": 0,
        "hasChildren": _has_children(directory, department),
        "isVirtualNode": False,
        "postIdList": [],
        "status": True,
    }


def _has_children(directory: Directory, department: Department) -> bool:
    return any(other.parent_id == department.id for other in directory.departments.values())
