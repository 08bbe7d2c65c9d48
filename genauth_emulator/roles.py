"""`RoleStore`: roles per namespace (permission group) and who holds them (`get-user-roles`, `role:*` webhooks).

Separate from groups because roles are keyed by namespace and code, and `get-user-roles` without a namespace
shows only the `default` one. `state.EmulatorState` owns one and calls it with its lock held; the
store's shape is `memberships.Memberships`, shared with groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genauth_emulator.memberships import Memberships

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


class RoleStore(Memberships[tuple[str, str], RoleRecord]):
    """Roles by `(namespace, code)`, oldest first."""

    def key(self, record: RoleRecord) -> tuple[str, str]:
        return (record.namespace, record.code)

    def taken(self, record: RoleRecord) -> str:
        return f"role {record.code!r} exists in namespace {record.namespace!r}"

    def unknown(self, key: tuple[str, str]) -> LookupError:
        namespace, code = key
        return UnknownRoleError(f"{namespace}:{code}")

    def get(self, code: str, namespace: str) -> RoleRecord:
        """The role with this code in this namespace; `UnknownRoleError` if none."""
        return self.lookup((namespace, code))

    def of_user(self, user_id: str, namespace: str) -> list[RoleRecord]:
        """The user's roles in one namespace, oldest role first."""
        return [role for role in self.with_member(user_id) if role.namespace == namespace]

    def in_namespace(self, namespace: str) -> list[RoleRecord]:
        """Every role of one namespace, oldest first."""
        return [role for role in self.records() if role.namespace == namespace]


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
