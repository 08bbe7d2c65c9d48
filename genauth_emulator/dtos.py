"""The v3 management API shapes built from emulator records: `UserDto` (§3.5) and `UserDepartmentRespDto` (§3.7).

`state.EmulatorState` calls these under its lock and hands copies to the endpoint modules. Copies are shallow
except for list and object values, which is what makes a page of 50 users cheap to build.
"""

from __future__ import annotations

import copy
from typing import Any

from genauth_emulator.records import Department, Membership, UserRecord


def user_dto(
    record: UserRecord,
    *,
    with_department_ids: bool = False,
    with_custom_data: bool = False,
    with_identities: bool = False,
) -> dict[str, Any]:
    """Return the user as `get-user` does, adding the optional parts the flags ask for."""
    dto = {
        key: copy.deepcopy(value) if isinstance(value, list | dict) else value for key, value in record.profile.items()
    }
    dto["mainDepartmentId"] = record.main_department_id()
    if with_department_ids:
        dto["departmentIds"] = list(record.memberships)
    if with_custom_data:
        dto["customData"] = copy.deepcopy(record.custom_data)
    if with_identities:
        dto["identities"] = copy.deepcopy(record.identities)
    return dto


def user_department(
    organization_code: str,
    department: Department,
    membership: Membership,
    *,
    path: list[Department] | None,
    with_custom_data: bool,
) -> dict[str, Any]:
    """Return one entry of `get-user-departments`; `path` (root first, excluding the department) adds the paths."""
    item: dict[str, Any] = {
        "organizationCode": organization_code,
        "departmentId": department.id,
        "isRoot": department.is_root,
        "createdAt": department.created_at,
        "name": department.name,
        "description": department.description,
        "openDepartmentId": None,
        "isLeader": membership.is_leader,
        "code": department.code,
        "isMainDepartment": membership.is_main,
        "joinedAt": membership.joined_at,
        "isVirtualNode": False,
    }
    if with_custom_data:
        item["customData"] = {}
    if path is not None:
        item["departmentIdPath"] = [node.id for node in path]
        item["departmentCodePath"] = [node.code for node in path]
        item["departmentNamePath"] = [node.name for node in path]
    return item
