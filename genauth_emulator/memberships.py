"""`Memberships`: the one shape user groups (`groups.GroupStore`) and roles (`roles.RoleStore`) share.

Both are records kept in creation order under a unique key, each with the user ids of its members in the order
they joined, and both forget a deleted user the same way. They differ only in the key (a group's code; a role's
namespace and code) and in how they name a missing one, so each subclass gives those two and the rest is here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar


class HasMembers(Protocol):
    """A record with members: the user ids, in the order they joined."""

    members: list[str]


Key = TypeVar("Key", bound=Hashable)
Record = TypeVar("Record", bound=HasMembers)


class Memberships(Generic[Key, Record]):
    """Records by key, oldest first, and the users in each."""

    def __init__(self) -> None:
        self._records: dict[Key, Record] = {}

    def key(self, record: Record) -> Key:
        """The record's unique key."""
        raise NotImplementedError

    def taken(self, record: Record) -> str:
        """Why `add` refuses a record whose key is in use (the `ValueError`'s message)."""
        raise NotImplementedError

    def unknown(self, key: Key) -> LookupError:
        """The error `lookup` raises when no record has this key."""
        raise NotImplementedError

    def add(self, record: Record) -> None:
        """Add a new record; its key must be unused."""
        key = self.key(record)
        if key in self._records:
            raise ValueError(self.taken(record))
        self._records[key] = record

    def lookup(self, key: Key) -> Record:
        """The record with this key; `unknown(key)` if none."""
        record = self._records.get(key)
        if record is None:
            raise self.unknown(key)
        return record

    def records(self) -> list[Record]:
        """Every record, oldest first."""
        return list(self._records.values())

    def with_member(self, user_id: str) -> list[Record]:
        """The records the user is a member of, oldest first."""
        return [record for record in self._records.values() if user_id in record.members]

    def forget_user(self, user_id: str) -> None:
        """Take a deleted user out of every record."""
        for record in self._records.values():
            if user_id in record.members:
                record.members.remove(user_id)
