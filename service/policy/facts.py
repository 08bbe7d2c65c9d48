"""What the policy knows about one user: plain values gathered by the enforcer, never fetched here.

The enforcer fills only the facts the loaded rules declare they need (``Fact``); a fact that was not fetched
is ``None``, and evaluating a rule that needs it is a programming error, not a silent "no match".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Fact(enum.Enum):
    """A kind of fact that costs a GenAuth call beyond the user record itself."""

    DEPARTMENTS = "departments"


@dataclass(frozen=True)
class Department:
    """One department the user belongs to, with the path of its ancestors (root first)."""

    department_id: str
    code: str | None
    name: str | None
    organization_code: str | None = None
    ancestor_ids: tuple[str, ...] = ()
    ancestor_codes: tuple[str, ...] = ()
    ancestor_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserFacts:
    """The user as the policy sees it. ``departments`` is None when no rule needed it fetched."""

    user_id: str
    email: str | None = None
    phone: str | None = None
    phone_country_code: str | None = None
    status: str | None = None
    departments: tuple[Department, ...] | None = None
