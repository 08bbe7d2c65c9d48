"""`RoleStore`: roles per namespace (permission group) and who holds them (`get-user-roles`, `role:*` webhooks).

Separate from groups because roles are keyed by namespace and code, and `get-user-roles` without a namespace
shows only the `default` one. `state.EmulatorState` owns one and calls it with its lock held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The permission group (namespace) roles belong to unless another is named.
DEFAULT_NAMESPACE = "default"


class UnknownRoleError(LookupError):
    """No role has this code in this namespace."""


@dataclass
class RoleRecord:
    """A role in one namespace (permission group) and the users it is assigned to, in assignment order."""

    id: str
    code: str
    namespace: str
    name: str
    description: str
    created_at: str
    members: list[str] = field(default_factory=list)


class RoleStore:
    """Roles by `(namespace, code)`, oldest first."""

    def __init__(self) -> None:
        self._roles: dict[tuple[str, str], RoleRecord] = {}

    def add(self, record: RoleRecord) -> None:
        """Add a new role; its code must be unused in its namespace."""
        key = (record.namespace, record.code)
        if key in self._roles:
            raise ValueError(f"role {record.code!r} exists in namespace {record.namespace!r}")
        self._roles[key] = record

    def get(self, code: str, namespace: str) -> RoleRecord:
        """The role with this code in this namespace; `UnknownRoleError` if none."""
        role = self._roles.get((namespace, code))
        if role is None:
            raise UnknownRoleError(f"{namespace}:{code}")
        return role

    def of_user(self, user_id: str, namespace: str) -> list[RoleRecord]:
        """The user's roles in one namespace, oldest role first."""
        return [role for role in self._roles.values() if role.namespace == namespace and user_id in role.members]

    def in_namespace(self, namespace: str) -> list[RoleRecord]:
        """Every role of one namespace, oldest first."""
        return [role for role in self._roles.values() if role.namespace == namespace]

    def forget_user(self, user_id: str) -> None:
        """Take a deleted user's roles away."""
        for role in self._roles.values():
            if user_id in role.members:
                role.members.remove(user_id)


def role_dto(role: RoleRecord) -> dict[str, Any]:
    """`RoleDto` (docs/genauth.md §3.9)."""
    return {
        "id": role.id,
        "code": role.code,
        "name": role.name,
        "description": role.description,
        "namespace": role.namespace,
        "namespaceName": "Default" if role.namespace == DEFAULT_NAMESPACE else role.namespace,
        "status": "ENABLE",
        "disableTime": None,
    }
