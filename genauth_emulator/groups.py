"""`GroupStore`: the pool's static user groups and who is in them (`get-user-groups`, `list-groups`,
`list-group-members`, `group:member-*` webhooks).

An aggregate of its own because a group changes on its own (members join and leave) and is read whole; a
user's groups are found by asking each group, which stays cheap because pools have few groups.
`state.EmulatorState` owns one and calls it with its lock held; the store's shape is
`memberships.Memberships`, shared with roles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genauth_emulator.memberships import Memberships


class UnknownGroupError(LookupError):
    """No user group has this code."""


@dataclass
class GroupRecord:
    """A static user group and its members (user ids, in the order they joined)."""

    id: str
    code: str
    name: str
    description: str
    created_at: str
    members: list[str] = field(default_factory=list)


class GroupStore(Memberships[str, GroupRecord]):
    """Groups by code, oldest first."""

    def key(self, record: GroupRecord) -> str:
        return record.code

    def taken(self, record: GroupRecord) -> str:
        return f"group {record.code!r} exists"

    def unknown(self, key: str) -> LookupError:
        return UnknownGroupError(key)

    def get(self, code: str) -> GroupRecord:
        """The group with this code; `UnknownGroupError` if none."""
        return self.lookup(code)

    def all(self) -> list[GroupRecord]:
        """Every group, oldest first."""
        return self.records()

    def of_user(self, user_id: str) -> list[GroupRecord]:
        """The groups the user belongs to, oldest group first."""
        return self.with_member(user_id)


def group_dto(group: GroupRecord) -> dict[str, Any]:
    """`ResGroupDto` (docs/genauth.md §3.8); `members` stays empty, as callers must not rely on it."""
    return {
        "id": group.id,
        "code": group.code,
        "name": group.name,
        "description": group.description,
        "type": "static",
        "metadataSource": [],
        "members": [],
    }


def webhook_group(group: GroupRecord, userpool_id: str) -> dict[str, Any]:
    """The group as `group:member-*` webhooks carry it (docs/genauth.md §1.10, constructed)."""
    return {
        "id": group.id,
        "code": group.code,
        "name": group.name,
        "description": group.description,
        "userPoolId": userpool_id,
    }
