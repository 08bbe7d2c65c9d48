"""`GroupStore`: the pool's static user groups and who is in them (`get-user-groups`, `list-groups`,
`list-group-members`, `group:member-*` webhooks).

An aggregate of its own because a group changes on its own (members join and leave) and is read whole; a
user's groups are found by asking each group, which stays cheap because pools have few groups.
`state.EmulatorState` owns one and calls it with its lock held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


class GroupStore:
    """Groups by code, oldest first."""

    def __init__(self) -> None:
        self._groups: dict[str, GroupRecord] = {}

    def add(self, record: GroupRecord) -> None:
        """Add a new group; its code must be unused."""
        if record.code in self._groups:
            raise ValueError(f"group {record.code!r} exists")
        self._groups[record.code] = record

    def get(self, code: str) -> GroupRecord:
        """The group with this code; `UnknownGroupError` if none."""
        group = self._groups.get(code)
        if group is None:
            raise UnknownGroupError(code)
        return group

    def all(self) -> list[GroupRecord]:
        """Every group, oldest first."""
        return list(self._groups.values())

    def of_user(self, user_id: str) -> list[GroupRecord]:
        """The groups the user belongs to, oldest group first."""
        return [group for group in self._groups.values() if user_id in group.members]

    def forget_user(self, user_id: str) -> None:
        """Take a deleted user out of every group."""
        for group in self._groups.values():
            if user_id in group.members:
                group.members.remove(user_id)


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
