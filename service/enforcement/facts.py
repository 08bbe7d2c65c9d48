"""Gathering a user's facts from GenAuth, fetching only what the loaded rules need.

``get-user`` is always read (contact details, status, source). Everything else costs a call and is read only
when a rule needs it (ARCHITECTURE.md, principle 6): departments (``get-user-departments`` with paths),
groups (``get-user-groups``), roles (``get-user-roles`` once per namespace the rules name), custom data
(``get-user`` with ``withCustomData``, in the same call).
"""

from __future__ import annotations

from typing import Any

from service.genauth.client import GenAuthClient
from service.policy import Policy
from service.policy.facts import Department, Fact, Role, UserFacts


def gather_facts(client: GenAuthClient, user_id: str, policy: Policy) -> UserFacts:
    needs = policy.needs
    user = client.get_user(user_id, with_custom_data=Fact.CUSTOM_DATA in needs)
    departments: tuple[Department, ...] | None = None
    if Fact.DEPARTMENTS in needs:
        departments = tuple(department_from_api(item) for item in client.list_user_departments(user_id))
    groups: tuple[str, ...] | None = None
    if Fact.GROUPS in needs:
        groups = tuple(str(group["code"]) for group in client.list_user_groups(user_id) if group.get("code"))
    roles: tuple[Role, ...] | None = None
    if Fact.ROLES in needs:
        roles = tuple(
            Role(code=str(role["code"]), namespace=str(role.get("namespace") or namespace))
            for namespace in sorted(policy.role_namespaces)
            for role in client.list_user_roles(user_id, namespace=namespace)
            if role.get("code")
        )
    custom_data = user.get("customData") if Fact.CUSTOM_DATA in needs else None
    return UserFacts(
        user_id=user_id,
        email=_text(user.get("email")),
        phone=_text(user.get("phone")),
        phone_country_code=_text(user.get("phoneCountryCode")),
        status=_text(user.get("status")),
        external_id=_text(user.get("externalId")),
        user_source_type=_text(user.get("userSourceType")),
        register_source=_texts(user.get("registerSource")),
        departments=departments,
        groups=groups,
        roles=roles,
        custom_data=(custom_data if isinstance(custom_data, dict) else {}) if Fact.CUSTOM_DATA in needs else None,
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
