"""What a delivery, a work row or a replay is about: a user, a department or group to list first, or a page of
a reconcile sweep's listing.

One value from the intake (``service.intake.schemas``) through the event record and the queue to replay.
The work table keeps a subject as its ``kind`` and ``user_id`` columns; the event record keeps it as one
string, and this module is the only place that writes or reads that string: a user as its id, an expansion
as ``<kind>:<id>`` (``department:d1``).
"""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
DEPARTMENT = "department"
GROUP = "group"
PAGE = "page"
"""A page of a reconcile sweep's listing, ``<sweep>:<listing>:<page>`` (``service.store.sweeps``)."""
REVERT = "revert"
"""A user whose writes an operator's ``revert`` asked to undo (``service.store.reverts``)."""
EXPANSIONS = (DEPARTMENT, GROUP)
"""The kinds whose members the worker lists and enqueues as users (``service.enforcement.expansion``)."""
_LISTED = (*EXPANSIONS, PAGE)


@dataclass(frozen=True)
class Subject:
    """A user (``kind`` ``user``), a department or group whose members are each a user to reconcile, or a page."""

    kind: str
    id: str

    @classmethod
    def user(cls, user_id: str) -> Subject:
        return cls(USER, user_id)

    @property
    def is_user(self) -> bool:
        return self.kind == USER

    def encode(self) -> str:
        """As the event record lists it: the id of a user, ``<kind>:<id>`` of an expansion."""
        return self.id if self.is_user else f"{self.kind}:{self.id}"

    @classmethod
    def decode(cls, entry: str) -> Subject:
        """The subject ``encode`` wrote as ``entry``."""
        kind, separator, rest = entry.partition(":")
        if separator and kind in _LISTED:
            return cls(kind, rest)
        return cls.user(entry)
