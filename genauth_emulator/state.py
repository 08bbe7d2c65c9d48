"""`EmulatorState`: the in-memory GenAuth user pool behind the emulator, as one facade over its aggregates.

Each concern lives in its own module, so that changing one (say, how roles are keyed) touches one file:

* `credentials` - the access key, management tokens and signed-request checks;
* `directory` - organizations and their department trees;
* `users` - users, identities and department memberships (with the indexes listings need);
* `groups`, `roles` - user groups, and roles per namespace;
* `mfa` - per-user MFA trigger data; `mfa_settings` - pool and application factors, and applications;
* `webhooks` - configured webhooks and their delivery logs; `webhook_delivery` - sending to them;
* `changes` - the feed that tells the webhook dispatcher and the event WebSocket what happened.

The facade keeps one re-entrant lock around all of them (the aggregates do not lock), hands out copies, never
live records, and emits a `changes.Change` for each event GenAuth would send. Tests build scenarios with its
helper methods (`add_user`, `add_users`, `add_member`, `move_department`, `set_mfa`, `add_group_member`,
`assign_role`, `login`, `set_global_mfa_factors`, `update_application_mfa`, ...); the Flask app (`app.py`
and the `*_endpoints` modules) reads and writes through the same methods.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from werkzeug.datastructures import MultiDict

from genauth_emulator import dtos, legacy, mfa
from genauth_emulator.changes import Change, ChangeFeed
from genauth_emulator.credentials import Credentials
from genauth_emulator.directory import Directory, UnknownDepartmentError, UnknownOrganizationError
from genauth_emulator.groups import GroupRecord, GroupStore, UnknownGroupError, group_dto, webhook_group
from genauth_emulator.mfa_settings import (
    ApplicationRecord,
    MfaSettings,
    UnknownApplicationError,
    application_dto,
    checked_factors,
    factor_events,
    ordered,
)
from genauth_emulator.payloads import event_body
from genauth_emulator.records import iso_timestamp, new_object_id
from genauth_emulator.roles import DEFAULT_NAMESPACE, RoleRecord, RoleStore, UnknownRoleError, role_dto
from genauth_emulator.signatures import SignedAuthorization
from genauth_emulator.users import USER_ID_TYPES, NewUser, UnknownUserError, UserStore
from genauth_emulator.webhook_delivery import WebhookDispatcher
from genauth_emulator.webhooks import WebhookRegistry

__all__ = [
    "DEFAULT_NAMESPACE",
    "USER_ID_TYPES",
    "EmulatorState",
    "GroupRecord",
    "RoleRecord",
    "UnknownApplicationError",
    "UnknownDepartmentError",
    "UnknownGroupError",
    "UnknownOrganizationError",
    "UnknownRoleError",
    "UnknownUserError",
]

_T = TypeVar("_T")
_LISTING_CACHE_SIZE = 32


class EmulatorState:
    """A thread-safe GenAuth user pool. `access_key_id` defaults to the pool id, as with the pool's own AK/SK.

    `auto_deliver` (default on) sends each change to the webhooks subscribed to it; the pool starts with no
    webhooks, so nothing is sent until one is created.
    """

    def __init__(
        self,
        *,
        userpool_id: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        set_mode: str = "replace",
        token_lifetime: int = 7200,
        clock: Callable[[], float] = time.time,
        auto_deliver: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._used_ids: set[str] = set()
        self.userpool_id = userpool_id or new_object_id(clock())
        self._credentials = Credentials(access_key_id or self.userpool_id, access_key_secret)
        self._set_mode = "replace"
        self.set_mode = set_mode
        self._token_lifetime = 7200
        self.token_lifetime = token_lifetime
        self._directory = Directory(new_id=self._new_id, timestamp=lambda: iso_timestamp(self._clock()))
        self._users = UserStore(new_id=self._new_id)
        self._groups = GroupStore()
        self._roles = RoleStore()
        self._mfa_settings = MfaSettings()
        self._listings: OrderedDict[Hashable, tuple[int, list[str]]] = OrderedDict()
        self._listing_stats = {"computed": 0, "cached": 0}
        self.webhooks = WebhookRegistry(clock=clock, lock=self._lock)
        """The pool's webhooks and their delivery logs (`webhook_endpoints`)."""
        self.changes = ChangeFeed()
        """Observers of what happens in the pool (the webhook dispatcher, the event WebSocket)."""
        self._dispatcher = WebhookDispatcher(self.webhooks, userpool_id=lambda: self.userpool_id, clock=clock)
        self._dispatcher.enabled = auto_deliver
        self.changes.subscribe(self._dispatcher.observe)

    # -- settings

    @property
    def access_key_id(self) -> str:
        """The AK callers present (the pool id unless another was given)."""
        return self._credentials.access_key_id

    @access_key_id.setter
    def access_key_id(self, value: str) -> None:
        with self._lock:
            self._credentials.access_key_id = value

    @property
    def access_key_secret(self) -> str:
        """The SK that signs requests and buys management tokens."""
        return self._credentials.access_key_secret

    @access_key_secret.setter
    def access_key_secret(self, value: str) -> None:
        with self._lock:
            self._credentials.access_key_secret = value

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

    @property
    def signature_skew(self) -> float:
        """Seconds a signed request's `date` may be away from the emulator's clock."""
        return self._credentials.signature_skew

    @signature_skew.setter
    def signature_skew(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("signature_skew must not be negative")
        with self._lock:
            self._credentials.signature_skew = float(seconds)

    @property
    def auto_deliver(self) -> bool:
        """Whether changes are delivered to the subscribed webhooks (default true)."""
        return self._dispatcher.enabled

    @auto_deliver.setter
    def auto_deliver(self, value: bool) -> None:
        self._dispatcher.enabled = bool(value)

    @property
    def delivery_timeout(self) -> float:
        """Seconds a webhook receiver has to answer before the attempt is logged as `ERRTIMEOUT`."""
        return self._dispatcher.timeout

    @delivery_timeout.setter
    def delivery_timeout(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("delivery_timeout must be positive")
        self._dispatcher.timeout = float(seconds)

    # -- credentials: management tokens and signatures

    def issue_token(self, access_key_id: str, access_key_secret: str) -> tuple[str, int] | None:
        """Return `(access_token, expires_in)` for the right AK/SK, or None for wrong ones."""
        if not self._credentials.key_pair_matches(access_key_id, access_key_secret):
            return None
        with self._lock:
            token = self._credentials.tokens.issue(
                userpool_id=self.userpool_id,
                access_key_id=self.access_key_id,
                now=self._clock(),
                lifetime=self._token_lifetime,
            )
            return token, self._token_lifetime

    def check_token(self, token: str) -> str | None:
        """Return why `token` is not accepted (unknown, revoked, expired), or None if it is."""
        with self._lock:
            return self._credentials.tokens.problem_with(token, self._clock())

    def revoke_tokens(self) -> None:
        """Invalidate every management token issued so far."""
        with self._lock:
            self._credentials.tokens.revoke_all()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired now (clients that cache tokens then get statusCode 401)."""
        with self._lock:
            self._credentials.tokens.expire_all(self._clock())

    def check_signature(
        self,
        authorization: SignedAuthorization,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        args: MultiDict[str, str],
        body: Any,
    ) -> None:
        """Accept an AK/SK-signed request or raise `signatures.SignatureError` (apiCodes 1300-1306)."""
        with self._lock:
            self._credentials.check_signature(
                authorization, method=method, path=path, headers=headers, args=args, body=body, now=self._clock()
            )

    def socket_authorization_matches(self, value: str) -> bool:
        """True when an event-subscription `authorization` header carries this pool's key pair.

        Lock-free (it reads two strings), so the event loop never waits for a long state operation.
        """
        return self._credentials.socket_authorization_matches(value)

    # -- organizations and departments

    def add_organization(self, code: str, name: str) -> str:
        """Create an organization and its root department (code = the organization code); return the root's id."""
        with self._lock:
            root_id = self._directory.add_organization(code, name).root_id
            self._users.touch()
            return root_id

    def add_department(self, organization_code: str, code: str, name: str, parent_code: str | None = None) -> str:
        """Create a department under `parent_code` (None: under the organization root); return its id."""
        with self._lock:
            department_id = self._directory.add_department(organization_code, code, name, parent_code).id
            self._users.touch()
            return department_id

    def move_department(self, code: str, new_parent_code: str) -> None:
        """Re-parent a department (and its subtree) under another department of the same organization."""
        with self._lock:
            self._directory.move(code, new_parent_code)
            self._users.touch()
            self._emit("organization:node-moved", None, department_code=code)

    def rename_department(self, code: str, name: str) -> None:
        """Rename a department and emit `organization:node-updated` (`{node, updates}`)."""
        with self._lock:
            self._directory.rename(code, name)
            self._users.touch()
            self._emit("organization:node-updated", None, department_code=code, updates={"name": name})

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

    # -- users

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
        identities: Sequence[Mapping[str, Any] | str] = (),
    ) -> dict[str, Any]:
        """Create a user in the given department codes (first = main); return it as `user()` does.

        `custom_data` is what `get-user` shows with `withCustomData`; `external_id`, `user_source_type` and
        `register_source` fill `externalId`, `userSourceType` and `registerSource`; `identities` (provider
        names such as `"wechatwork"`, or `IdentityDto` fields) are what `withIdentities` shows. Emits
        `user:created` (and `register` for `user_source_type="register"`).
        """
        with self._lock:
            user_id = self._create_user(
                NewUser(
                    username=username,
                    email=email,
                    phone=phone,
                    phone_country_code=phone_country_code,
                    name=name,
                    status=status,
                    departments=departments,
                    user_id=user_id,
                    application_mfa=application_mfa,
                    mfa_phone=mfa_phone,
                    mfa_email=mfa_email,
                    custom_data=custom_data,
                    external_id=external_id,
                    user_source_type=user_source_type,
                    register_source=register_source,
                    identities=identities,
                )
            )
            return self.user(user_id)

    def add_users(self, users: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create many users at once (each mapping holds `add_user`'s keyword arguments); return their ids.

        Same effect as calling `add_user` for each, with the lock taken once and no copies handed back: seeding
        100,000 users this way takes seconds.
        """
        with self._lock:
            return [self._create_user(NewUser(**spec)) for spec in users]

    def update_user(
        self,
        user_id: str,
        *,
        custom_data: Mapping[str, Any] | None = None,
        identities: Sequence[Mapping[str, Any] | str] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Change v3 profile fields (e.g. `phone="13800138009"`, `status="Suspended"`, `externalId="E-1"`),
        custom data (`custom_data={"costCenter": "FIN-01"}` sets those keys; a None value removes one) and
        identities (a new list replaces the old); emit `user:updated`; return the user as `user()` does."""
        with self._lock:
            record = self._users.get(user_id)
            unknown = sorted(name for name in fields if name == "userId" or name not in record.profile)
            if unknown:
                raise ValueError(f"cannot update fields {unknown}")
            self._users.update(record, fields, iso_timestamp(self._clock()))
            for key, value in (custom_data or {}).items():
                if value is None:
                    record.custom_data.pop(key, None)
                else:
                    record.custom_data[key] = copy.deepcopy(value)
            if identities is not None:
                self._users.set_identities(record, identities)
            self._users.touch()
            updates = dict(fields)
            if custom_data:
                updates["customData"] = dict(custom_data)
            self._emit("user:updated", user_id, updates=updates)
            return self.user(user_id)

    def login(self, user_id: str) -> dict[str, Any]:
        """Record a sign-in (`loginsCount`, `lastLogin`) and emit `login`; return the user as `user()` does."""
        with self._lock:
            record = self._users.get(user_id)
            now = iso_timestamp(self._clock())
            fields = {"loginsCount": int(record.profile.get("loginsCount") or 0) + 1, "lastLogin": now}
            self._users.update(record, fields, record.profile["updatedAt"])
            self._emit("login", user_id)
            return self.user(user_id)

    def delete_user(self, user_id: str) -> None:
        """Remove a user with their memberships (departments, groups, roles) and MFA data; emit `user:deleted`."""
        with self._lock:
            self._users.get(user_id)
            self._emit("user:deleted", user_id)  # observers build the body while the user still exists
            self._users.delete(user_id)
            self._groups.forget_user(user_id)
            self._roles.forget_user(user_id)

    def add_member(self, user_id: str, department_code: str, *, is_leader: bool = False) -> None:
        """Put a user in a department (the first department a user joins is their main one) and emit
        `organization:member-added`. Idempotent: no event when they are already a member."""
        with self._lock:
            record = self._users.get(user_id)
            department = self._directory.by_code(department_code)
            if self._users.add_membership(
                record, department.id, joined_at=iso_timestamp(self._clock()), is_leader=is_leader
            ):
                self._emit("organization:member-added", user_id, department_code=department_code)

    def remove_member(self, user_id: str, department_code: str) -> None:
        """Take a user out of a department (no-op if not a member; the next one becomes main if needed) and
        emit `organization:member-removed`."""
        with self._lock:
            record = self._users.get(user_id)
            if self._users.remove_membership(record, self._directory.by_code(department_code).id):
                self._emit("organization:member-removed", user_id, department_code=department_code)

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
                self._users.get(user_id),
                with_department_ids=with_department_ids,
                with_custom_data=with_custom_data,
                with_identities=with_identities,
            )

    def user_views(
        self,
        user_ids: Iterable[str],
        *,
        with_department_ids: bool = False,
        with_custom_data: bool = False,
        with_identities: bool = False,
    ) -> list[dict[str, Any]]:
        """`user_view` for each id in order, skipping users deleted meanwhile (one lock for the page)."""
        with self._lock:
            return [
                dtos.user_dto(
                    self._users.get(user_id),
                    with_department_ids=with_department_ids,
                    with_custom_data=with_custom_data,
                    with_identities=with_identities,
                )
                for user_id in user_ids
                if user_id in self._users
            ]

    def user_ids(self) -> list[str]:
        """Return every user id, oldest user first."""
        with self._lock:
            return self._users.ids()

    def user_count(self) -> int:
        """How many users the pool has."""
        with self._lock:
            return len(self._users)

    def resolve_user_id(self, value: str, id_type: str | None = None) -> str:
        """Find the user an API `userId` + `userIdType` names; raise `UnknownUserError` if none.

        Besides the profile fields, `identity` takes `<extIdpId>:<userIdInIdp>` and `sync_relation`
        `<provider>:<userIdInIdp>`, as GenAuth documents.
        """
        with self._lock:
            return self._users.resolve(value, id_type)

    def read_users(self, reader: Callable[[UserStore], _T]) -> _T:
        """Run `reader` over the user store with the lock held (for filters); it must return copies or ids."""
        with self._lock:
            return reader(self._users)

    def listing(self, key: Hashable, compute: Callable[[], list[str]]) -> list[str]:
        """The ids a listing shows, in its order: computed once per state of the pool, then served from a cache.

        `key` names the listing and everything that decides its contents and order (filters, sort). Paging
        through 100,000 users thus costs one filter-and-sort, not one per page. Callers must not change the
        list they get (slice it).
        """
        with self._lock:
            version = self._users.version
            cached = self._listings.get(key)
            if cached is not None and cached[0] == version:
                self._listings.move_to_end(key)
                self._listing_stats["cached"] += 1
                return cached[1]
            self._listing_stats["computed"] += 1
            ids = compute()
            self._listings[key] = (self._users.version, ids)
            while len(self._listings) > _LISTING_CACHE_SIZE:
                self._listings.popitem(last=False)
            return ids

    def listing_stats(self) -> dict[str, int]:
        """How many listing requests were `computed` (a pass over the pool) and how many served `cached`."""
        with self._lock:
            return dict(self._listing_stats)

    def user_departments(self, user_id: str, *, with_paths: bool, with_custom_data: bool) -> list[dict[str, Any]]:
        """Return the user's `get-user-departments` entries, in the order they joined."""
        with self._lock:
            record = self._users.get(user_id)
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

            def compute() -> list[str]:
                scope = self._directory.subtree(department_id) if include_children else {department_id}
                return self._users.member_ids(scope)

            return list(self.listing(("department-members", department_id, include_children), compute))

    def direct_member_count(self, department_id: str) -> int:
        """How many users belong to exactly this department (`membersCount` of a `DepartmentDto`)."""
        with self._lock:
            return self._users.direct_member_count(department_id)

    # -- user groups

    def add_group(self, code: str, name: str, description: str = "") -> str:
        """Create a static user group; return its id."""
        with self._lock:
            group_id = self._new_id()
            self._groups.add(
                GroupRecord(
                    id=group_id,
                    code=code,
                    name=name,
                    description=description,
                    created_at=iso_timestamp(self._clock()),
                )
            )
            return group_id

    def add_group_member(self, user_id: str, code: str) -> None:
        """Put a user in a group and emit `group:member-added` (idempotent: no event when already in it)."""
        with self._lock:
            self._users.get(user_id)
            group = self._groups.get(code)
            if user_id not in group.members:
                group.members.append(user_id)
                self._users.touch()
                self._emit("group:member-added", user_id, group_code=code)

    def remove_group_member(self, user_id: str, code: str) -> None:
        """Take a user out of a group and emit `group:member-removed` (no-op if not a member)."""
        with self._lock:
            self._users.get(user_id)
            group = self._groups.get(code)
            if user_id in group.members:
                group.members.remove(user_id)
                self._users.touch()
                self._emit("group:member-removed", user_id, group_code=code)

    def group(self, code: str) -> dict[str, Any]:
        """Return the group as `get-user-groups` lists it (`ResGroupDto`, `members` left empty)."""
        with self._lock:
            return group_dto(self._groups.get(code))

    def user_groups(self, user_id: str) -> list[dict[str, Any]]:
        """Return the groups the user belongs to, oldest group first."""
        with self._lock:
            self._users.get(user_id)
            return [group_dto(group) for group in self._groups.of_user(user_id)]

    def groups(self) -> list[dict[str, Any]]:
        """Every group, oldest first, as `list-groups` answers them."""
        with self._lock:
            return [group_dto(group) for group in self._groups.all()]

    def group_member_ids(self, code: str) -> list[str]:
        """Return the ids of a group's members, in the order they joined."""
        with self._lock:
            return list(self._groups.get(code).members)

    def webhook_group(self, code: str) -> dict[str, Any]:
        """Return the group as `group:member-*` webhooks carry it (docs/genauth.md §1.10, constructed)."""
        with self._lock:
            return webhook_group(self._groups.get(code), self.userpool_id)

    # -- roles

    def add_role(
        self, code: str, namespace: str = DEFAULT_NAMESPACE, name: str | None = None, description: str = ""
    ) -> str:
        """Create a role in `namespace` (permission group); return its id."""
        with self._lock:
            role_id = self._new_id()
            self._roles.add(
                RoleRecord(
                    id=role_id,
                    code=code,
                    namespace=namespace,
                    name=name or code,
                    description=description,
                    created_at=iso_timestamp(self._clock()),
                )
            )
            return role_id

    def assign_role(self, user_id: str, code: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Assign a role to a user and emit `role:assigned` (idempotent: no event when they hold it)."""
        with self._lock:
            self._users.get(user_id)
            role = self._roles.get(code, namespace)
            if user_id not in role.members:
                role.members.append(user_id)
                self._emit("role:assigned", user_id)

    def unassign_role(self, user_id: str, code: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Take a role from a user and emit `role:unassigned` (no-op if they do not hold it)."""
        with self._lock:
            self._users.get(user_id)
            role = self._roles.get(code, namespace)
            if user_id in role.members:
                role.members.remove(user_id)
                self._emit("role:unassigned", user_id)

    def user_roles(self, user_id: str, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
        """Return the user's roles in one namespace as `get-user-roles` lists them (`RoleDto`)."""
        with self._lock:
            self._users.get(user_id)
            return [role_dto(role) for role in self._roles.of_user(user_id, namespace)]

    def roles(self, namespace: str = DEFAULT_NAMESPACE) -> list[dict[str, Any]]:
        """Every role of one namespace, oldest first, as `list-roles` answers them (`RoleDto`)."""
        with self._lock:
            return [role_dto(role) for role in self._roles.in_namespace(namespace)]

    def role_member_ids(self, code: str, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
        """Return the ids of the users holding a role, in assignment order."""
        with self._lock:
            return list(self._roles.get(code, namespace).members)

    # -- webhook (legacy) shapes

    def webhook_user(self, user_id: str) -> dict[str, Any]:
        """Return the user as webhooks carry it (§1.8), password hash, salt and token included."""
        with self._lock:
            return legacy.webhook_user(self._users.get(user_id), self.userpool_id)

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

    # -- webhook deliveries

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every automatic webhook delivery queued so far has been attempted and logged."""
        return self._dispatcher.wait_until_idle(timeout)

    # -- MFA trigger data

    def get_mfa(self, user_id: str) -> dict[str, Any]:
        """Return a copy of the user's trigger data as `get-mfa-status` shows it (unset keys null/false)."""
        with self._lock:
            return mfa.trigger_view(self._users.get(user_id).mfa)

    def set_mfa(self, user_id: str, data: Mapping[str, Any]) -> None:
        """Store trigger data with replace semantics, whatever `set_mode` is (for arranging tests)."""
        with self._lock:
            record = self._users.get(user_id)
            record.mfa = mfa.replaced(record.mfa, data)

    def write_mfa(self, user_id: str, data: Mapping[str, Any]) -> None:
        """Store trigger data as `set-mfa-status` does, following `set_mode`."""
        with self._lock:
            record = self._users.get(user_id)
            combine = mfa.merged if self._set_mode == "merge" else mfa.replaced
            record.mfa = combine(record.mfa, data)

    def mfa_info(self, user_id: str) -> dict[str, str]:
        """Return `get-user-mfa-info`'s enabled/disabled summary for the user."""
        with self._lock:
            return mfa.mfa_info(self._users.get(user_id).mfa)

    # -- pool and application MFA settings

    def global_mfa_factors(self) -> list[str]:
        """The factors enabled for the whole pool (`get-global-mfa-settings`), in the SDK enum's order."""
        with self._lock:
            return ordered(self._mfa_settings.pool_factors)

    def set_global_mfa_factors(self, factors: Iterable[str]) -> list[str]:
        """Make exactly these factors the pool's enabled ones; return them."""
        with self._lock:
            self._mfa_settings.pool_factors = checked_factors(factors)
            return ordered(self._mfa_settings.pool_factors)

    def enable_global_mfa_factors(self, factors: Iterable[str]) -> list[str]:
        """Switch these factors on for the pool (others stay as they are); return the enabled ones."""
        with self._lock:
            self._mfa_settings.pool_factors |= checked_factors(factors)
            return ordered(self._mfa_settings.pool_factors)

    def disable_global_mfa_factors(self, factors: Iterable[str]) -> list[str]:
        """Switch these factors off for the pool; return the ones still enabled."""
        with self._lock:
            self._mfa_settings.pool_factors -= checked_factors(factors)
            return ordered(self._mfa_settings.pool_factors)

    def add_application(
        self, name: str = "Web App", *, app_id: str | None = None, identifier: str | None = None
    ) -> str:
        """Create a self-built application that inherits the pool's MFA factors; return its id."""
        with self._lock:
            new_id = app_id or self._new_id()
            self._used_ids.add(new_id)
            self._mfa_settings.add_app(
                ApplicationRecord(
                    id=new_id,
                    name=name,
                    identifier=identifier or f"app-{new_id[-8:]}",
                    created_at=iso_timestamp(self._clock()),
                )
            )
            return new_id

    def application(self, app_id: str) -> dict[str, Any]:
        """The application as `get-application` answers it (`ApplicationDto`)."""
        with self._lock:
            return application_dto(self._mfa_settings.app(app_id), self.userpool_id)

    def applications(self) -> list[dict[str, Any]]:
        """Every application, oldest first, as `ApplicationDto`s."""
        with self._lock:
            return [application_dto(record, self.userpool_id) for record in self._mfa_settings.apps()]

    def application_mfa_factors(self, app_id: str) -> list[str]:
        """The factors the app challenges: its own once it customises security, else the pool's."""
        with self._lock:
            return ordered(self._mfa_settings.effective(app_id))

    def update_application_mfa(
        self, app_id: str, *, enabled: Iterable[str] = (), disabled: Iterable[str] = ()
    ) -> list[str]:
        """Give the app its own factors (`update-application-mfa-settings`), emit `application:mfa:enabled` /
        `application:mfa:disabled` for each factor that changed, and return the app's factors."""
        with self._lock:
            turn_on, turn_off = checked_factors(enabled, "enabledFactors"), checked_factors(disabled, "disabledFactors")
            before, after = self._mfa_settings.update_app(app_id, turn_on, turn_off)
            self._emit_factor_events(app_id, before, after)
            return ordered(after)

    def inherit_application_mfa(self, app_id: str) -> list[str]:
        """Make the app use the pool's factors again (emitting events for factors that change); return them."""
        with self._lock:
            before, after = self._mfa_settings.inherit(app_id)
            self._emit_factor_events(app_id, before, after)
            return ordered(after)

    def mfa_trigger_data(self, app_id: str, user_id: str) -> dict[str, Any]:
        """`get-mfa-trigger-data`: the user's trigger data with `applicationMfa` narrowed to the app's factors."""
        with self._lock:
            effective = self._mfa_settings.effective(app_id)
            view = mfa.trigger_view(self._users.get(user_id).mfa)
            view["applicationMfa"] = [item for item in view["applicationMfa"] if item.get("mfaPolicy") in effective]
            return view

    # -- internals (call with the lock held)

    def _create_user(self, new: NewUser) -> str:
        if new.user_id is not None and new.user_id in self._users:
            raise ValueError(f"user {new.user_id!r} exists")
        department_ids = [self._directory.by_code(code).id for code in new.departments]  # fail before creating
        uid = new.user_id or self._new_id()
        self._used_ids.add(uid)
        record = self._users.add(
            uid,
            now=self._clock(),
            fields=new.fields(),
            mfa_data=new.trigger_data(),
            custom_data=copy.deepcopy(dict(new.custom_data)) if new.custom_data else {},
            identities=new.identities,
        )
        for department_id in department_ids:
            self._users.add_membership(record, department_id, joined_at=record.profile["createdAt"], is_leader=False)
        self._emit("user:created", uid)
        if new.user_source_type == "register":
            self._emit("register", uid)
        return uid

    def _emit(self, event: str, user_id: str | None, **details: Any) -> None:
        def build() -> dict[str, Any]:
            return event_body(self, event, user_id, **details)

        self.changes.emit(Change(event=event, user_id=user_id, build=build))

    def _emit_factor_events(self, app_id: str, before: set[str], after: set[str]) -> None:
        for name, body in factor_events(app_id, before, after):
            self.changes.emit(Change(event=name, user_id=None, build=_constant(body)))

    def _new_id(self) -> str:
        while True:
            candidate = new_object_id(self._clock())
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate


def _constant(body: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: body
