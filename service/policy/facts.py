"""What the policy knows about one user: plain values gathered by the enforcer, never fetched here.

The enforcer fills only the facts the loaded rules declare they need (each condition's ``fact`` in
``service.policy.conditions``); a fact that was not fetched is ``None``, and evaluating a rule that needs it is
a programming error, not a silent "no match". The fetched facts sit in one mapping keyed by the fact's name, so
a new condition adds its fact without touching this module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any


class Fact(enum.StrEnum):
    """Facts beyond the user record that code outside their condition names (a condition may name its own)."""

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


@dataclass(frozen=True, init=False)
class UserFacts:
    """The user as the policy sees it: the user record, and ``fetched``, the facts that cost a call (or a
    ``get-user`` flag), by name. ``UserFacts(user_id, departments=...)`` puts a fact's name in ``fetched``;
    ``facts.departments`` reads it back, None when no rule needed it. A name that is neither a field of the
    record nor a condition's ``fact`` (a misspelling) raises ``TypeError``, as a wrong keyword would."""

    user_id: str
    email: str | None = None
    phone: str | None = None
    username: str | None = None
    """Shown next to the id in listings; no rule matches on it."""
    phone_country_code: str | None = None
    """The profile phone's country code (``+86``); GenAuth keeps it apart from ``phone``."""
    phone_verified: bool | None = None
    """GenAuth's ``phoneVerified``; None when GenAuth did not say (then the phone counts as verified)."""
    email_verified: bool | None = None
    """GenAuth's ``emailVerified``; None when GenAuth did not say (then the address counts as verified)."""
    status: str | None = None
    """``Activated``, ``Suspended``, ``Deactivated``, ``Resigned`` or ``Archived`` (v3 ``UserDto.status``)."""
    external_id: str | None = None
    user_source_type: str | None = None
    """``excel``, ``register``, ``adminCreated`` or ``syncTask``."""
    register_source: tuple[str, ...] = ()
    """e.g. ``basic:email``, ``import:manual``, ``social:github``."""
    fetched: Mapping[str, Any] = field(default_factory=dict)
    """``departments`` (``Department``), ``groups`` (codes), ``roles`` (``Role``), ``custom_data``, ..."""

    def __init__(self, user_id: str, *, fetched: Mapping[str, Any] = MappingProxyType({}), **values: Any) -> None:
        """``fetched``: facts by name, as ``dataclasses.replace`` passes them on; ``values`` add to them."""
        from service.policy.conditions import FACTS  # the registry, built on this module

        values = {**fetched, **values}
        record = {each.name for each in fields(self)} - {"fetched"}
        unknown = [name for name in values if name not in record and name not in FACTS]
        if unknown:
            raise TypeError(
                f"UserFacts() got an unknown fact {', '.join(map(repr, unknown))}: neither a field of the user record "
                f"nor a condition's fact ({', '.join(FACTS)})"
            )
        object.__setattr__(self, "user_id", user_id)
        for name, value in values.items():
            if name in record:
                object.__setattr__(self, name, value)
        object.__setattr__(self, "fetched", MappingProxyType({k: v for k, v in values.items() if k not in record}))

    def __getattr__(self, name: str) -> Any:
        """A fetched fact by its name; None when it was not fetched."""
        if name.startswith("_") or name == "fetched":
            raise AttributeError(name)
        return self.fetched.get(name)
