"""One user's record, memberships and MFA trigger data in GenAuth, read and written through ``GenAuthClient``.

The enforcer reads these per user (``service.enforcement.facts`` and ``reconciling``): ``get-user`` (with
``customData``, ``identities`` or ``departmentIds`` when a rule needs them), ``get-user-departments`` with the
ancestors' paths (only when the cached organisation tree cannot place the user's departments),
``get-user-groups``, ``get-user-roles`` (one namespace per call), and ``get-mfa-status`` / ``set-mfa-status``
(docs/genauth.md §3). ``find_user`` turns the name an admin has for a user (id, username,
email or phone) into the user id, for ``explain``, ``replay --user`` and the admin API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from service.genauth.client import GenAuthClient, Json
from service.genauth.errors import (
    GenAuthEmptyAnswerError,
    GenAuthRefusedError,
    GenAuthUnavailableError,
    GenAuthUserNotFoundError,
)
from service.genauth.paging import get_all, unpaged_items


def get_user(client: GenAuthClient, user_id: str, *, flags: Iterable[str] = ()) -> Json:
    """The user's v3 record (``UserDto``), with what ``flags`` ask for (``withCustomData``, ``withIdentities``)."""
    params = {"userId": user_id, "userIdType": "user_id", **dict.fromkeys(flags, "true")}
    return _object(client.call("GET", "/api/v3/get-user", params=params), "/api/v3/get-user")


def list_user_groups(client: GenAuthClient, user_id: str) -> list[Json]:
    """The user groups the user belongs to (``get-user-groups``: not paged)."""
    endpoint = "/api/v3/get-user-groups"
    return unpaged_items(client.call("GET", endpoint, params={"userId": user_id, "userIdType": "user_id"}), endpoint)


def list_user_roles(client: GenAuthClient, user_id: str, *, namespace: str) -> list[Json]:
    """The user's roles in one namespace (permission group); GenAuth returns one namespace per call."""
    endpoint = "/api/v3/get-user-roles"
    params = {"userId": user_id, "userIdType": "user_id", "namespace": namespace}
    return unpaged_items(client.call("GET", endpoint, params=params), endpoint)


def list_user_departments(client: GenAuthClient, user_id: str) -> list[Json]:
    """Every department the user belongs to, with the ids, codes and names of its ancestors.

    Paged oldest membership first: GenAuth's default order (newest first) moves when the user joins a
    department between two pages (docs/genauth.md §3.7).
    """
    params = {
        "userId": user_id,
        "userIdType": "user_id",
        "withDepartmentPaths": "true",
        "sortBy": "JoinDepartmentAt",
        "orderBy": "Asc",
    }
    return get_all(client, "/api/v3/get-user-departments", params)


def get_mfa_status(client: GenAuthClient, user_id: str) -> Json:
    """The user's stored MFA trigger data, exactly as GenAuth returned it.

    ``data`` null, ``{}`` or all null means GenAuth did not give the user's data (the user exists: a missing
    one is apiCode 2004); that is ``GenAuthEmptyAnswerError``, never an empty object to write over.
    """
    endpoint = "/api/v3/get-mfa-status"
    data = client.call("GET", endpoint, params={"userId": user_id, "userIdType": "user_id"})
    if data is None:
        raise GenAuthEmptyAnswerError(endpoint, "data is null for an existing user")
    found = _object(data, endpoint)
    if all(value is None for value in found.values()):
        raise GenAuthEmptyAnswerError(endpoint, "data is empty for an existing user")
    return found


def set_mfa_status(client: GenAuthClient, user_id: str, trigger_data: Json) -> None:
    """Store the user's whole MFA trigger data (the caller has merged it with what was read)."""
    body = {"userId": user_id, "userIdType": "user_id", "mfaTriggerData": trigger_data}
    client.call("POST", "/api/v3/set-mfa-status", json_body=body)


@dataclass(frozen=True)
class UserRef:
    """A user found by the name an admin has for them: the id every other call uses, and how to show them."""

    user_id: str
    username: str | None
    email: str | None
    id_type: str
    """The ``userIdType`` that found them: ``user_id``, ``username``, ``email`` or ``phone``."""

    @property
    def label(self) -> str:
        """Username, else email, else the id: never the phone number."""
        return self.username or self.email or self.user_id


_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{4,30}\Z")


def reference_types(reference: str) -> tuple[str, ...]:
    """The ``userIdType`` values to try for ``reference``, most likely first: a user id, then by its shape an
    email (has ``@``) or a phone number (digits), then a username (anything)."""
    types = ["user_id"]
    if "@" in reference:
        types.append("email")
    if _PHONE.match(reference):
        types.append("phone")
    types.append("username")
    return tuple(types)


def find_user(client: GenAuthClient, reference: str) -> UserRef:
    """The user ``reference`` names (a user id, username, email or phone), looked up with ``get-user`` and
    ``userIdType``; raises ``GenAuthUserNotFoundError`` when none of them matches."""
    reference = reference.strip()
    for id_type in reference_types(reference):
        try:
            data = client.call("GET", "/api/v3/get-user", params={"userId": reference, "userIdType": id_type})
        except GenAuthRefusedError:
            # Unknown (404 / apiCode 2004), or a value GenAuth cannot read as this type (400): try the next type.
            continue
        if isinstance(data, dict) and isinstance(data.get("userId"), str) and data["userId"]:
            return UserRef(
                user_id=data["userId"],
                username=data.get("username") if isinstance(data.get("username"), str) else None,
                email=data.get("email") if isinstance(data.get("email"), str) else None,
                id_type=id_type,
            )
    raise GenAuthUserNotFoundError(
        "/api/v3/get-user", f"no user {reference!r} in GenAuth (by id, username, email or phone)"
    )


def _object(data: Any, endpoint: str) -> Json:
    if not isinstance(data, dict):
        raise GenAuthUnavailableError(endpoint, "'data' is not an object")
    return data
