"""The organisation tree, groups, roles and user listings of the management API, built on ``GenAuthClient.call``.

``service.enforcement.scoping`` uses these to find the users in scope of the rules: organisations
(``list-organizations``), one department by id or code (``get-department``), departments by name
(``search-departments``), and one page at a time of a department's members (``list-department-members``,
optionally with its sub-departments) or of the whole pool (``POST list-users``); ``expansion`` and
``references`` list groups, group members and roles. Every listing is read with ``service.genauth.paging``.
Listings ask for a stable order (oldest first) where GenAuth takes one, so that paging does not skip or repeat
users while people join. ``service.enforcement.organisation`` caches the whole tree, read with
``list_organizations`` and ``list_all_departments`` (one call per organisation).
"""

from __future__ import annotations

from collections.abc import Sequence

from service.genauth.client import GenAuthClient, Json
from service.genauth.errors import GenAuthRefusedError, GenAuthUnavailableError
from service.genauth.paging import PAGE_LIMIT, Page, get_all, get_page, page_of, unpaged_items


def list_organizations(client: GenAuthClient) -> list[Json]:
    """Every organisation (top-level tree) of the pool (``list-organizations``)."""
    return get_all(client, "/api/v3/list-organizations")


def get_department(client: GenAuthClient, organization_code: str, reference: str, *, id_type: str) -> Json | None:
    """The department ``reference`` names (``id_type`` ``department_id`` or ``code``), or None if there is none."""
    params = {"organizationCode": organization_code, "departmentId": reference, "departmentIdType": id_type}
    try:
        data = client.call("GET", "/api/v3/get-department", params=params)
    except GenAuthRefusedError:
        # GenAuth answers an unknown department with 404 (or 400 for an id it cannot parse): not found.
        return None
    return data if isinstance(data, dict) and data.get("departmentId") else None


def list_all_departments(client: GenAuthClient, organization_code: str) -> list[Json]:
    """Every department of the organisation, from its root down (``get-all-departments``: not paged)."""
    endpoint = "/api/v3/get-all-departments"
    params = {"organizationCode": organization_code, "departmentId": "root", "departmentIdType": "department_id"}
    return unpaged_items(client.call("GET", endpoint, params=params), endpoint)


def search_departments(client: GenAuthClient, organization_code: str, keywords: str) -> list[Json]:
    """Departments of the organisation whose name contains ``keywords`` (GenAuth's fuzzy search)."""
    endpoint = "/api/v3/search-departments"
    body = {"keywords": keywords, "organizationCode": organization_code}
    data = client.call("POST", endpoint, json_body=body)
    if data is None:
        return []
    if not isinstance(data, list):
        raise GenAuthUnavailableError(endpoint, "'data' is not an array")
    return [item for item in data if isinstance(item, dict)]


def department_members_page(
    client: GenAuthClient,
    organization_code: str,
    department_id: str,
    *,
    include_children: bool,
    number: int,
    flags: Sequence[str] = (),
) -> Page:
    """Page ``number`` of a department's members (and of its sub-departments' when ``include_children``), each
    user record read with the ``with*`` ``flags`` (``service.enforcement.facts.user_flags``)."""
    params = {
        **dict.fromkeys(flags, "true"),
        "organizationCode": organization_code,
        "departmentId": department_id,
        "departmentIdType": "department_id",
        "includeChildrenDepartments": "true" if include_children else "false",
        "sortBy": "JoinDepartmentAt",
        "orderBy": "Asc",
    }
    return get_page(client, "/api/v3/list-department-members", params, number)


def users_page(client: GenAuthClient, *, number: int, flags: Sequence[str] = ()) -> Page:
    """Page ``number`` of every user in the pool (``POST list-users``), oldest first, read with ``flags``."""
    endpoint = "/api/v3/list-users"
    body = {
        "options": {
            **dict.fromkeys(flags, True),
            "pagination": {"page": number, "limit": PAGE_LIMIT},
            "sort": [{"field": "createdAt", "order": "asc"}],
        }
    }
    return page_of(client.call("POST", endpoint, json_body=body), endpoint)


def user_ids_of(page: Page) -> list[str]:
    """The ``userId`` of each user on the page, in order."""
    return [str(item["userId"]) for item in page.items if isinstance(item.get("userId"), str) and item["userId"]]


def list_group_members(client: GenAuthClient, code: str) -> list[Json]:
    """Every member of the user group ``code`` (``list-group-members``)."""
    return get_all(client, "/api/v3/list-group-members", {"code": code})


def list_roles(client: GenAuthClient, namespace: str) -> list[Json]:
    """Every role in ``namespace`` (permission group; ``list-roles``)."""
    return get_all(client, "/api/v3/list-roles", {"namespace": namespace})


def list_groups(client: GenAuthClient) -> list[Json]:
    """Every user group of the pool (``list-groups``)."""
    return get_all(client, "/api/v3/list-groups")
