"""Turning a department or a group into the users in it, for events whose payload does not list them.

``organization:node-moved`` names only the moved department; ``role:assigned`` may name departments and
groups. The worker expands such subjects with these functions and enqueues every member as an ordinary user
row, so the reconcile path stays the only one that changes GenAuth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from service.genauth.client import PAGE_LIMIT, GenAuthClient
from service.genauth.errors import GenAuthNotFoundError, GenAuthRequestError

MAX_PAGES = 2000


def paged(client: GenAuthClient, method: str, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Every item of a paged endpoint (``{totalCount, list}``), 50 at a time."""
    seen = 0
    for page in range(1, MAX_PAGES + 1):
        query = {**params, "page": str(page), "limit": str(PAGE_LIMIT)}
        if method == "GET":
            data = client.call(method, path, params=query)
        else:
            data = client.call(
                method, path, json_body={**params, "options": {"pagination": {"page": page, "limit": PAGE_LIMIT}}}
            )
        items = data.get("list") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return
        for item in items:
            if isinstance(item, dict):
                yield item
        seen += len(items)
        total = data.get("totalCount")
        if len(items) < PAGE_LIMIT or (isinstance(total, int) and seen >= total):
            return


def department_members(client: GenAuthClient, department_id: str) -> list[str]:
    """Users of the department and all its sub-departments, whichever organisation it is in."""
    for organization in paged(client, "GET", "/api/v3/list-organizations", {}):
        code = organization.get("organizationCode")
        if not isinstance(code, str):
            continue
        params = {
            "organizationCode": code,
            "departmentId": department_id,
            "departmentIdType": "department_id",
            "includeChildrenDepartments": "true",
        }
        try:
            return _user_ids(paged(client, "GET", "/api/v3/list-department-members", params))
        except (GenAuthNotFoundError, GenAuthRequestError):
            continue  # not in this organisation
    return []


def group_members(client: GenAuthClient, group_id: str) -> list[str]:
    """Users of the group with this id (or code)."""
    code = group_id
    for group in paged(client, "GET", "/api/v3/list-groups", {}):
        if group_id in (group.get("id"), group.get("groupId"), group.get("code")):
            code = str(group.get("code") or group_id)
            break
    return _user_ids(paged(client, "GET", "/api/v3/list-group-members", {"code": code}))


def _user_ids(items: Iterator[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(item["userId"]) for item in items if item.get("userId")))
