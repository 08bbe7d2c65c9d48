"""The organisation tree and user listings of the management API, built on ``GenAuthClient.call``.

``service.enforcement.scoping`` uses these to find the users in scope of the rules: organisations
(``list-organizations``), one department by id or code (``get-department``), departments by name
(``search-departments``), and one page at a time of a department's members (``list-department-members``,
optionally with its sub-departments) or of the whole pool (``POST list-users``). Pages hold at most 50 users,
GenAuth's cap. Listings ask for a stable order (oldest first) so that paging does not skip or repeat users
while people join.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthNotFoundError, GenAuthRequestError, GenAuthUnavailableError

PAGE_LIMIT = 50

Json = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items and GenAuth's ``totalCount`` (None if it gave none)."""

    items: list[Json]
    total: int | None

    def is_last(self, number: int, limit: int = PAGE_LIMIT) -> bool:
        """True when no page follows page ``number`` (counted from 1)."""
        if len(self.items) < limit:
            return True
        return self.total is not None and number * limit >= self.total


def list_organizations(client: GenAuthClient) -> list[Json]:
    """Every organisation (top-level tree) of the pool, paging through ``list-organizations``."""
    endpoint = "/api/v3/list-organizations"

    def fetch(number: int) -> Page:
        params = {"page": str(number), "limit": str(PAGE_LIMIT)}
        return _page(client.call("GET", endpoint, params=params), endpoint)

    return all_pages(fetch, endpoint)


def get_department(client: GenAuthClient, organization_code: str, reference: str, *, id_type: str) -> Json | None:
    """The department ``reference`` names (``id_type`` ``department_id`` or ``code``), or None if there is none."""
    params = {"organizationCode": organization_code, "departmentId": reference, "departmentIdType": id_type}
    try:
        data = client.call("GET", "/api/v3/get-department", params=params)
    except (GenAuthNotFoundError, GenAuthRequestError):
        # GenAuth answers an unknown department with 404 (or 400 for an id it cannot parse): not found.
        return None
    return data if isinstance(data, dict) and data.get("departmentId") else None


def search_departments(client: GenAuthClient, organization_code: str, keywords: str) -> list[Json]:
    """Departments of the organisation whose name contains ``keywords`` (GenAuth's fuzzy search)."""
    endpoint = "/api/v3/search-departments"
    body = {"keywords": keywords, "organizationCode": organization_code}
    data = client.call("POST", endpoint, json_body=body)
    if data is None:
        return []
    if not isinstance(data, list):
        raise unreadable(endpoint, "'data' is not an array")
    return [item for item in data if isinstance(item, dict)]


def department_members_page(
    client: GenAuthClient,
    organization_code: str,
    department_id: str,
    *,
    include_children: bool,
    number: int,
    limit: int = PAGE_LIMIT,
) -> Page:
    """Page ``number`` of a department's members (and of its sub-departments' when ``include_children``)."""
    endpoint = "/api/v3/list-department-members"
    params = {
        "organizationCode": organization_code,
        "departmentId": department_id,
        "departmentIdType": "department_id",
        "includeChildrenDepartments": "true" if include_children else "false",
        "sortBy": "JoinDepartmentAt",
        "orderBy": "Asc",
        "page": str(number),
        "limit": str(limit),
    }
    return _page(client.call("GET", endpoint, params=params), endpoint)


def users_page(client: GenAuthClient, *, number: int, limit: int = PAGE_LIMIT) -> Page:
    """Page ``number`` of every user in the pool (``POST list-users``), oldest first."""
    endpoint = "/api/v3/list-users"
    body = {
        "options": {
            "pagination": {"page": number, "limit": limit},
            "sort": [{"field": "createdAt", "order": "asc"}],
        }
    }
    return _page(client.call("POST", endpoint, json_body=body), endpoint)


def user_ids_of(page: Page) -> list[str]:
    """The ``userId`` of each user on the page, in order."""
    return [str(item["userId"]) for item in page.items if isinstance(item.get("userId"), str) and item["userId"]]


def _page(data: Any, endpoint: str) -> Page:
    if not isinstance(data, dict):
        raise unreadable(endpoint, "'data' is not an object")
    items = data.get("list") or []
    if not isinstance(items, list):
        raise unreadable(endpoint, "'list' is not an array")
    total = data.get("totalCount")
    return Page(
        items=[item for item in items if isinstance(item, dict)],
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def unreadable(endpoint: str, problem: str) -> GenAuthUnavailableError:
    error = GenAuthUnavailableError(f"GenAuth {endpoint}: {problem}")
    error.endpoint = endpoint
    return error


MAX_PAGES = 2000
"""A listing longer than this many pages of 50 (100,000 entries) is refused rather than read forever."""


def all_pages(fetch: Callable[[int], Page], what: str) -> list[Json]:
    """Every item of a paged listing, asking ``fetch(page_number)`` until the last page.

    Raises ``GenAuthUnavailableError`` (retried later) if the listing does not end within ``MAX_PAGES``, so a
    server that ignores ``page`` cannot make a caller loop forever or silently keep a truncated list.
    """
    items: list[Json] = []
    for number in range(1, MAX_PAGES + 1):
        page = fetch(number)
        items.extend(page.items)
        if page.is_last(number):
            return items
    raise unreadable(what, f"more than {MAX_PAGES} pages")


def group_members_page(client: GenAuthClient, code: str, *, number: int, limit: int = PAGE_LIMIT) -> Page:
    """Page ``number`` of a user group's members."""
    endpoint = "/api/v3/list-group-members"
    params = {"code": code, "page": str(number), "limit": str(limit)}
    return _page(client.call("GET", endpoint, params=params), endpoint)


def groups_page(client: GenAuthClient, *, number: int, limit: int = PAGE_LIMIT) -> Page:
    """Page ``number`` of the pool's user groups."""
    endpoint = "/api/v3/list-groups"
    return _page(client.call("GET", endpoint, params={"page": str(number), "limit": str(limit)}), endpoint)
