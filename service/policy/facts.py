"""What the policy knows about one user: plain values gathered by the enforcer, never fetched here.

The enforcer fills only the facts the loaded rules declare they need (``Fact``); a fact that was not fetched
is ``None``, and evaluating a rule that needs it is a programming error, not a silent "no match".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Fact(enum.Enum):
    """A kind of fact that costs a GenAuth call beyond the user record itself."""

    DEPARTMENTS = "departments"
    GROUPS = "groups"
    ROLES = "roles"
    CUSTOM_DATA = "custom_data"


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
class Role:
    """A role held by the user, within its namespace (permission group); ``default`` is GenAuth's default."""

    code: str
    namespace: str = "default"


@dataclass(frozen=True)
class UserFacts:
    """The user as the policy sees it. A fact that costs a call (``Fact``) is None when no rule needed it."""

    user_id: str
    email: str | None = None
    phone: str | None = None
    phone_country_code: str | None = None
    status: str | None = None
    """``Activated``, ``Suspended``, ``Deactivated``, ``Resigned`` or ``Archived`` (v3 ``UserDto.status``)."""
    external_id: str | None = None
    user_source_type: str | None = None
    """``excel``, ``register``, ``adminCreated`` or ``syncTask``."""
    register_source: tuple[str, ...] = ()
    """e.g. ``basic:email``, ``import:manual``, ``social:github``."""
    departments: tuple[Department, ...] | None = None
    groups: tuple[str, ...] | None = None
    """Codes of the user groups the user belongs to."""
    roles: tuple[Role, ...] | None = None
    """Roles in every namespace the rules mention."""
    custom_data: Mapping[str, Any] | None = None
