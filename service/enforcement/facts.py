"""Gathering a user's facts from GenAuth, fetching only what the loaded rules need.

``get-user`` is always read (contact details and status); departments cost one more call and are read only
when a rule matches on departments (ARCHITECTURE.md, principle 6).
"""

from __future__ import annotations

from typing import Any

from service.genauth.client import GenAuthClient
from service.policy.facts import Department, Fact, UserFacts


def gather_facts(client: GenAuthClient, user_id: str, needs: frozenset[Fact]) -> UserFacts:
    user = client.get_user(user_id)
    departments: tuple[Department, ...] | None = None
    if Fact.DEPARTMENTS in needs:
        departments = tuple(department_from_api(item) for item in client.list_user_departments(user_id))
    return UserFacts(
        user_id=user_id,
        email=_text(user.get("email")),
        phone=_text(user.get("phone")),
        phone_country_code=_text(user.get("phoneCountryCode")),
        status=_text(user.get("status")),
        departments=departments,
    )


def department_from_api(item: dict[str, Any]) -> Department:
    """A ``get-user-departments`` list item as a policy fact."""
    return Department(
        department_id=str(item.get("departmentId", "")),
        code=_text(item.get("code")),
        name=_text(item.get("name")),
        organization_code=_text(item.get("organizationCode")),
        ancestor_ids=_texts(item.get("departmentIdPath")),
        ancestor_codes=_texts(item.get("departmentCodePath")),
        ancestor_names=_texts(item.get("departmentNamePath")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)
