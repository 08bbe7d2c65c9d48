"""Turning a department or a group into the users in it, for events whose payload does not list them.

``organization:node-moved`` names only the moved department; ``role:assigned`` may name departments and
groups. The worker expands such subjects with these functions and enqueues every member as an ordinary user
row, so the reconcile path stays the only one that changes GenAuth. Listings use ``service.genauth.directory``
and ``paging`` (stable order, every page, malformed pages refused) so no member is silently left out.
"""

from __future__ import annotations

from service.genauth.client import GenAuthClient
from service.genauth.directory import department_members_page, list_group_members, list_groups, list_organizations
from service.genauth.errors import GenAuthRefusedError
from service.genauth.paging import Page, all_pages


def department_members(client: GenAuthClient, department_id: str) -> list[str]:
    """Users of the department and all its sub-departments, whichever organisation it is in.

    The webhook names a department by id but not its organisation, so each organisation is asked in turn;
    one that does not know the id answers not-found (or refuses the id).
    """
    for organization in list_organizations(client):
        code = organization.get("organizationCode")
        if not isinstance(code, str):
            continue

        def fetch(number: int, code: str = code) -> Page:
            return department_members_page(client, code, department_id, include_children=True, number=number)

        try:
            members = all_pages(fetch, "/api/v3/list-department-members")
        except GenAuthRefusedError:
            continue  # not in this organisation
        return _user_ids(members)
    return []


def group_members(client: GenAuthClient, group_id: str) -> list[str]:
    """Users of the group with this id (or code)."""
    code = group_id
    for group in list_groups(client):
        if group_id in (group.get("id"), group.get("groupId"), group.get("code")):
            code = str(group.get("code") or group_id)
            break
    return _user_ids(list_group_members(client, code))


def _user_ids(items: list[dict[str, object]]) -> list[str]:
    return list(dict.fromkeys(str(item["userId"]) for item in items if item.get("userId")))
