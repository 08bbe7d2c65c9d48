"""`EmulatorState`: the in-memory GenAuth user pool behind the emulator: credentials and management tokens,
organizations and their department trees, users, memberships, user groups, roles (per namespace), custom
data and per-user MFA trigger data.

Tests build scenarios with the helper methods (`add_user`, `add_member`, `move_department`, `set_mfa`,
`add_group`, `add_group_member`, `add_role`, `assign_role`, ...);
the Flask app (`app.py` and the `*_endpoints` modules) reads and writes through the same methods. One
re-entrant lock guards everything, and every method hands out copies, never live records.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from genauth_emulator import dtos, legacy, mfa
from genauth_emulator.directory import Directory, UnknownDepartmentError, UnknownOrganizationError
from genauth_emulator.records import (
    Membership,
    UserRecord,
    fake_id_token,
    iso_timestamp,
    new_object_id,
    new_user_profile,
)
from genauth_emulator.tokens import TokenRegistry
from genauth_emulator.webhooks import WebhookRegistry

__all__ = [
    "DEFAULT_NAMESPACE",
    "EmulatorState",
    "UnknownDepartmentError",
    "UnknownGroupError",
    "UnknownOrganizationError",
    "UnknownRoleError",
    "UnknownUserError",
]

# userIdType value -> the UserDto field it looks users up by.
USER_ID_TYPES = {
    "user_id": "userId",
    "phone": "phone",
    "email": "email",
    "username": "username",
    "external_id": "externalId",
}
_ID_TOKEN_LIFETIME = 14 * 24 * 3600
#: The permission group (namespace) roles belong to unless another is named.
DEFAULT_NAMESPACE = "default"
_T = TypeVar("_T")


class UnknownUserError(LookupError):
    """No user matches; the API answers statusCode 404 with apiCode 2004."""


class UnknownGroupError(LookupError):
    """No user group has this code."""


class UnknownRoleError(LookupError):
    """No role has this code in this namespace."""


@dataclass
class GroupRecord:
    """A static user group and its members (user ids, in the order they joined)."""

    id: str
    code: str
    name: str
    description: str
    created_at: str
    members: list[str] = field(default_factory=list)


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


class EmulatorState:
    """A thread-safe GenAuth user pool. `access_key_id` defaults to the pool id, as with the pool's own AK/SK."""

    def __init__(
        self,
        *,
        userpool_id: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        set_mode: str = "replace",
        token_lifetime: int = 7200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self.userpool_id = userpool_id or new_object_id(clock())
        self.access_key_id = access_key_id or self.userpool_id
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(24)
        self._set_mode = "replace"
        self.set_mode = set_mode
        self._token_lifetime = 7200
        self.token_lifetime = token_lifetime
        self._tokens = TokenRegistry()
        self._sequence = itertools.count(1)
        self._used_ids: set[str] = set()
        self._directory = Directory(new_id=self._new_id, timestamp=lambda: iso_timestamp(self._clock()))
        self._users: dict[str, UserRecord] = {}
        self._groups: dict[str, GroupRecord] = {}
        self._roles: dict[tuple[str, str], RoleRecord] = {}
        self.webhooks = WebhookRegistry(clock=clock)
        """The pool's webhooks and their delivery logs (`webhook_endpoints`)."""

    # -- settings

    @property
    def set_mode(self) -> str:
        """How `set-mfa-status` stores what it gets: `replace` (default) or `merge`."""
        return self._set_mode

    @set_mode.setter
    def set_mode(self, value: str) -> None:
        if value not in mfa.SET_MODES:
            raise ValueError(f"set_mode must be one of {mfa.SET_MODES}, not {value!r}")
        with self._lock:
            self._set_mode = value

    @property
    def token_lifetime(self) -> int:
        """Seconds a newly issued management token stays valid (`expires_in`)."""
        return self._token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        if seconds < 0:
            raise ValueError("token_lifetime must not be negative")
        with self._lock:
            self._token_lifetime = int(seconds)

    # -- management tokens

    def issue_token(self, access_key_id: str, access_key_secret: str) -> tuple[str, int] | None:
        """Return `(access_token, expires_in)` for the right AK/SK, or None for wrong ones."""
        key_ok = hmac.compare_digest(access_key_id.encode(), self.access_key_id.encode())
        secret_ok = hmac.compare_digest(access_key_secret.encode(), self.access_key_secret.encode())
        if not (key_ok and secret_ok):
            return None
        with self._lock:
            token = self._tokens.issue(
                userpool_id=self.userpool_id,
                access_key_id=self.access_key_id,
                now=self._clock(),
                lifetime=self._token_lifetime,
            )
            return token, self._token_lifetime

    def check_token(self, token: str) -> str | None:
        """Return why `token` is not accepted (unknown, revoked, expired), or None if it is."""
        with self._lock:
            return self._tokens.problem_with(token, self._clock())

    def revoke_tokens(self) -> None:
        """Invalidate every management token issued so far."""
        with self._lock:
            self._tokens.revoke_all()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired now (clients that cache tokens then get statusCode 401)."""
        with self._lock:
            self._tokens.expire_all(self._clock())

    # -- organizations and departments

    def add_organization(self, code: str, name: str) -> str:
        """Create an organization and its root department (code = the organization code); return the root's id."""
        with self._lock:
            return self._directory.add_organization(code, name).root_id

    def add_department(self, organization_code: str, code: str, name: str, parent_code: str | None = None) -> str:
        """Create a department under `parent_code` (None: under the organization root); return its id."""
        with self._lock:
            return self._directory.add_department(organization_code, code, name, parent_code).id

    def move_department(self, code: str, new_parent_code: str) -> None:
        """Re-parent a department (and its subtree) under another department of the same organization."""
        with self._lock:
            self._directory.move(code, new_parent_code)

    def department_id(self, code: str) -> str:
        """Return the id of the department with this code (an organization code gives its root)."""
        with self._lock:
            return self._directory.by_code(code).id

    def organization(self, code: str) -> dict[str, str]:
        """Return `{organizationCode, name, orgId, rootDepartmentId}` for an organization."""
        with self._lock:
            organization = self._directory.organization(code)
            return {
                "organizationCode": organization.code,
                "name": organization.name,
                "orgId": organization.id,
                "rootDepartmentId": organization.root_id,
            }

    def find_department(self, organization_code: str, reference: str, id_type: str = "department_id") -> str:
        """Resolve an API department reference (`root`, an id, or a code per `id_type`) to a department id."""
        with self._lock:
            return self._directory.find(organization_code, reference, id_type).id

    def read_directory(self, reader: Callable[[Directory], _T]) -> _T:
        """Run `reader` over the organizations and departments with the lock held; it must return copies."""
        with self._lock:
            return reader(self._directory)

    def organization_code_of(self, department_code: str) -> str:
        """Return the code of the organization a department belongs to."""
        with self._lock:
            return self._directory.by_code(department_code).organization_code

    def parent_code(self, department_code: str) -> str | None:
        """Return the code of a department's parent (None for a root)."""
        with self._lock:
            parent_id = self._directory.by_code(department_code).parent_id
            return None if parent_id is None else self._directory.departments[parent_id].code

    # -- users and memberships

    def add_user(
        self,
        *,
        username: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        phone_country_code: str = "+86",
        name: str | None = None,
        status: str = "Activated",
        departments: Sequence[str] = (),
        user_id: str | None = None,
        application_mfa: Sequence[Mapping[str, Any] | str] = (),
        mfa_phone: str | None = None,
        mfa_email: str | None = None,
        custom_data: Mapping[str, Any] | None = None,
        external_id: str | None = None,
        user_source_type: str = "adminCreated",
        register_source: Sequence[str] = ("import:manual",),
    ) -> dict[str, Any]:
        """Create a user in the given department codes (first = main); return it as `user()` does.

        `custom_data` is what `get-user` shows with `withCustomData`; `external_id`, `user_source_type` and
        `register_source` fill `externalId`, `userSourceType` and `registerSource`.
        """
        with self._lock:
            if user_id is not None and user_id in self._users:
                raise ValueError(f"user {user_id!r} exists")
            for code in departments:
                self._directory.by_code(code)  # fail before creating anything
            now = self._clock()
            uid = user_id or self._new_id()
            self._used_ids.add(uid)
            fields = {
                "username": username,
                "email": email,
                "phone": phone,
                "phoneCountryCode": phone_country_code if phone else None,
                "name": name,
                "status": status,
                "emailVerified": email is not None,
                "phoneVerified": phone is not None,
                "externalId": external_id,
                "userSourceType": user_source_type,
                "registerSource": list(register_source),
            }
            self._users[uid] = UserRecord(
                profile=new_user_profile(uid, iso_timestamp(now), fields),
                password_hash=secrets.token_hex(16),
                salt="".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(12)),
                encrypted_password=base64.b64encode(secrets.token_bytes(48)).decode("ascii"),
                id_token=fake_id_token(uid, self.userpool_id, now),
                token_expired_at=iso_timestamp(now + _ID_TOKEN_LIFETIME),
                mfa={
                    "mfaToken": secrets.token_urlsafe(24),
                    "applicationMfa": mfa.normalise_factors(application_mfa),
                    "mfaPhone": mfa_phone,
                    "mfaPhoneCountryCode": phone_country_code if mfa_phone else None,
                    "mfaEmail": mfa_email,
                },
                custom_data=dict(custom_data or {}),
            )
            for code in departments:
                self.add_member(uid, code)
            return self.user(uid)

    def update_user(
        self, user_id: str, *, custom_data: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Change v3 profile fields (e.g. `phone="13800138009"`, `status="Suspended"`, `externalId="E-1"`) and
        custom data (`custom_data={"costCenter": "FIN-01"}` sets those keys; a None value removes one);
        return the user as `user()` does."""
        with self._lock:
            record = self._record(user_id)
            unknown = sorted(name for name in fields if name == "userId" or name not in record.profile)
            if unknown:
                raise ValueError(f"cannot update fields {unknown}")
            record.profile.update(fields)
            for key, value in (custom_data or {}).items():
                if value is None:
                    record.custom_data.pop(key, None)
                else:
                    record.custom_data[key] = value
            record.profile["updatedAt"] = iso_timestamp(self._clock())
            return self.user(user_id)

    def delete_user(self, user_id: str) -> None:
        """Remove a user with its memberships (departments, groups, roles) and MFA data."""
        with self._lock:
            self._record(user_id)
            del self._users[user_id]
            for members in [group.members for group in self._groups.values()] + [
                role.members for role in self._roles.values()
            ]:
                if user_id in members:
                    members.remove(user_id)

    def add_member(self, user_id: str, department_code: str, *, is_leader: bool = False) -> None:
        """Put a user in a department; the first department a user joins is their main one. Idempotent."""
        with self._lock:
            record = self._record(user_id)
            department = self._directory.by_code(department_code)
            if department.id in record.memberships:
                return
            record.memberships[department.id] = Membership(
                department_id=department.id,
                joined_at=iso_timestamp(self._clock()),
                seq=next(self._sequence),
                is_main=not record.memberships,
                is_leader=is_leader,
            )

    def remove_member(self, user_id: str, department_code: str) -> None:
        """Take a user out of a department (no-op if not a member); the next one becomes main if needed."""
        with self._lock:
            record = self._record(user_id)
            removed = record.memberships.pop(self._directory.by_code(department_code).id, None)
            if removed is not None and removed.is_main and record.memberships:
                next(iter(record.memberships.values())).is_main = True

    def user(self, user_id: str) -> dict[str, Any]:
        """Return the user as v3 `get-user` would, plus `departmentIds`."""
        return self.user_view(user_id, with_department_ids=True)

    def user_view(
        self,
        user_id: str,
        *,
        with_department_ids: bool = False,
        with_custom_data: bool = False,
        with_identities: bool = False,
    ) -> dict[str, Any]:
        """Return the v3 `UserDto` with the optional parts the flags ask for."""
        with self._lock:
            return dtos.user_dto(
                self._record(user_id),
                with_department_ids=with_department_ids,
                with_custom_data=with_custom_data,
                with_identities=with_identities,
            )

    def user_ids(self) -> list[str]:
        """Return every user id, oldest user first."""
        with self._lock:
            return list(self._users)

    def resolve_user_id(self, value: str, id_type: str | None = None) -> str:
        """Find the user an API `userId` + `userIdType` names; raise `UnknownUserError` if none."""
        field = USER_ID_TYPES.get(id_type or "user_id")
        if field is None:
            raise ValueError(f"unsupported userIdType {id_type!r}")
        with self._lock:
            if field == "userId" and value in self._users:
                return value
            for record in self._users.values():
                if record.profile.get(field) == value:
                    return record.user_id
        raise UnknownUserError(value)

    def user_departments(self, user_id: str, *, with_paths: bool, with_custom_data: bool) -> list[dict[str, Any]]:
        """Return the user's `get-user-departments` entries, in the order they joined."""
        with self._lock:
            record = self._record(user_id)
            items = []
            for membership in sorted(record.memberships.values(), key=lambda m: m.seq):
                department = self._directory.departments[membership.department_id]
                path = self._directory.path_to(department) if with_paths else None
                items.append(
                    dtos.user_department(
                        department.organization_code,
                        department,
                        membership,
                        path=path,
                        with_custom_data=with_custom_data,
                    )
                )
            return items

    def department_member_ids(self, department_id: str, *, include_children: bool) -> list[str]:
        """Return members of a department (and its subtree if asked), ordered by when they joined it."""
        with self._lock:
            scope = self._directory.subtree(department_id) if include_children else {department_id}
            joined: dict[str, int] = {}
            for record in self._users.values():
                seqs = [m.seq for m in record.memberships.values() if m.department_id in scope]
                if seqs:
                    joined[record.user_id] = min(seqs)
            return sorted(joined, key=joined.__getitem__)

    # -- user groups

    def add_group(self, code: str, name: str, description: str = "") -> str:
        """Create a static user group; return its id."""
        with self._lock:
            if code in self._groups:
                raise ValueError(f"group {code!r} exists")
            group_id = self._new_id()
            self._groups[code] = GroupRecord(
                id=group_id, code=code, name=name, description=description, created_at=iso_timestamp(self._clock())
            )
            return group_id

    def add_group_member(self, user_id: str, code: str) -> None:
        """Put a user in a group (idempotent)."""
        with self._lock:
            self._record(user_id)
            group = self._group(code)
            if user_id not in group.members:
                group.members.append(user_id)

    def remove_group_member(self, user_id: str, code: str) -> None:
        """Take a user out of a group (no-op if not a member)."""
        with self._lock:
            self._record(user_id)
            group = self._group(code)
            if user_id in group.members:
                group.members.remove(user_id)

    def group(self, code: str) -> dict[str, Any]:
        """Return the group as `get-user-groups` lists it (`ResGroupDto`, `members` left empty)."""
        with self._lock:
            return _group_dto(self._group(code))

    def user_groups(self, user_id: str) -> list[dict[str, Any]]:
        """Return the groups the user belongs to, oldest group first."""
        with self._lock:
            self._record(user_id)
            return [_group_dto(group) for group in self._groups.values() if user_id in group.members]

    def groups(self) -> list[dict[str, Any]]:
        """Every group, oldest first, as `list-groups` answers them."""
        with self._lock:
            return [_group_dto(group) for group in self._groups.values()]

    def group_member_ids(self, code: str) -> list[str]:
        """Return the ids of a group's members, in the order they joined."""
        with self._lock:
            return list(self._group(code).members)

    def webhook_group(self, code: str) -> dict[str, Any]:
        """Return the group as `group:member-*` webhooks carry it (contract §1.10, constructed)."""
        with self._lock:
            group = self._group(code)
            return {
                "id": group.id,
                "code": group.code,
                "name": group.name,
                "description": group.description,
                "userPoolId": self.userpool_id,
            }

    # -- roles

    def add_role(
        self, code: str, namespace: str = DEFAULT_NAMESPACE, name: str | None = None, description: str = ""
    ) -> str:
        """Create a role in `namespace` (permission group); return its id."""
        with self._lock:
            if (namespace, code) in self._roles:
                raise ValueError(f"role {code!r} exists in namespace {namespace!r}")
            role_id = self._new_id()
            self._roles[(namespace, code)] = RoleRecord(
                id=role_id,
                code=code,
                namespace=namespace,
                name=name or code,
                description=description,
                created_at=iso_timestamp(self._clock()),
            )
            return role_id

    def assign_role(self, user_id: str, code: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Assign a role to a user (idempotent)."""
        with self._lock:
            self._record(user_id)
            role = self._role(code, namespace)
            if user_id not in role.members:
                role.members.append(user_id)

    def unassign_role(self, user_id: str, code: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Take a role from a user (no-op if they do not hold it)."""
        with self._lock:
            self._record(user_id)
            role = self._role(code, namespace)
            if user_id in role.members:
                role.members.remove(user_id)

    def user_roles(self, user_id: str, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
        """Return the user's roles in one namespace as `get-user-roles` lists them (`RoleDto`)."""
        with self._lock:
            self._record(user_id)
            return [
                _role_dto(role)
                for role in self._roles.values()
                if role.namespace == namespace and user_id in role.members
            ]

    def role_member_ids(self, code: str, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
        """Return the ids of the users holding a role, in assignment order."""
        with self._lock:
            return list(self._role(code, namespace).members)

    # -- webhook (legacy) shapes

    def webhook_user(self, user_id: str) -> dict[str, Any]:
        """Return the user as webhooks carry it (§1.8), password hash, salt and token included."""
        with self._lock:
            return legacy.webhook_user(self._record(user_id), self.userpool_id)

    def webhook_node(self, department_code: str) -> dict[str, Any]:
        """Return a department as the `node` of `organization:*` webhooks (§1.9)."""
        with self._lock:
            department = self._directory.by_code(department_code)
            organization = self._directory.organization(department.organization_code)
            return legacy.webhook_node(department, organization, self.userpool_id)

    def webhook_organization(self, organization_code: str) -> dict[str, Any]:
        """Return an organization as `organization:*` webhooks carry it (§1.9)."""
        with self._lock:
            return legacy.webhook_organization(self._directory.organization(organization_code), self.userpool_id)

    # -- MFA trigger data

    def get_mfa(self, user_id: str) -> dict[str, Any]:
        """Return a copy of the user's trigger data as `get-mfa-status` shows it (unset keys null/false)."""
        with self._lock:
            return mfa.trigger_view(self._record(user_id).mfa)

    def set_mfa(self, user_id: str, data: Mapping[str, Any]) -> None:
        """Store trigger data with replace semantics, whatever `set_mode` is (for arranging tests)."""
        with self._lock:
            record = self._record(user_id)
            record.mfa = mfa.replaced(record.mfa, data)

    def write_mfa(self, user_id: str, data: Mapping[str, Any]) -> None:
        """Store trigger data as `set-mfa-status` does, following `set_mode`."""
        with self._lock:
            record = self._record(user_id)
            combine = mfa.merged if self._set_mode == "merge" else mfa.replaced
            record.mfa = combine(record.mfa, data)

    def mfa_info(self, user_id: str) -> dict[str, str]:
        """Return `get-user-mfa-info`'s enabled/disabled summary for the user."""
        with self._lock:
            return mfa.mfa_info(self._record(user_id).mfa)

    # -- internals (call with the lock held)

    def _new_id(self) -> str:
        while True:
            candidate = new_object_id(self._clock())
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    def _record(self, user_id: str) -> UserRecord:
        record = self._users.get(user_id)
        if record is None:
            raise UnknownUserError(user_id)
        return record

    def _group(self, code: str) -> GroupRecord:
        group = self._groups.get(code)
        if group is None:
            raise UnknownGroupError(code)
        return group

    def _role(self, code: str, namespace: str) -> RoleRecord:
        role = self._roles.get((namespace, code))
        if role is None:
            raise UnknownRoleError(f"{namespace}:{code}")
        return role


def _group_dto(group: GroupRecord) -> dict[str, Any]:
    """`ResGroupDto` (contract §3.8); `members` stays empty, as callers must not rely on it."""
    return {
        "id": group.id,
        "code": group.code,
        "name": group.name,
        "description": group.description,
        "type": "static",
        "metadataSource": [],
        "members": [],
    }


def _role_dto(role: RoleRecord) -> dict[str, Any]:
    """`RoleDto` (contract §3.9)."""
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
