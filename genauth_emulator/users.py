"""`UserStore`: the users of the emulated pool, their identities and their department memberships.

One aggregate because they change together: deleting a user drops their memberships, a membership names a user,
and listings read both. `state.EmulatorState` owns one and calls it with its lock held; the store does not lock.

Two indexes keep a pool of 100,000 users fast: user lookups by `userIdType` (phone, email, username,
externalId, identity, sync relation) are dictionary reads instead of scans, and each department knows its
members (with the order they joined), so `list-department-members` never walks the whole pool. `version`
grows with every change a listing could see, so `EmulatorState` can cache a listing's order between pages.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genauth_emulator import mfa
from genauth_emulator.records import Membership, UserRecord, iso_timestamp, new_user_profile

#: userIdType value -> the UserDto field it looks users up by (`identity` and `sync_relation` are separate).
USER_ID_TYPES = {
    "user_id": "userId",
    "phone": "phone",
    "email": "email",
    "username": "username",
    "external_id": "externalId",
    "identity": "identity",
    "sync_relation": "sync_relation",
}
_INDEXED_FIELDS = ("phone", "email", "username", "externalId")

#: IdentityDto.type for a provider when the caller names none (the connection type GenAuth reports) [derived].
IDENTITY_TYPES = {
    "wechatwork": "wechatwork:corp:qrconnect",
    "lark": "lark-internal",
    "wechat": "wechat:pc",
    "dingtalk": "dingtalk",
    "ldap": "ldap",
    "ad": "ad",
    "oidc": "oidc",
    "saml": "saml",
}


class UnknownUserError(LookupError):
    """No user matches; the API answers statusCode 404 with apiCode 2004."""


class UserStore:
    """Users by id (in creation order), their lookup indexes and each department's members."""

    def __init__(self, *, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self._users: dict[str, UserRecord] = {}
        self._by_field: dict[str, dict[Any, set[str]]] = {name: {} for name in _INDEXED_FIELDS}
        self._by_identity: dict[str, str] = {}  # "<extIdpId>:<userIdInIdp>" -> user id
        self._by_relation: dict[str, str] = {}  # "<provider>:<userIdInIdp>" -> user id
        self._members: dict[str, dict[str, int]] = {}  # department id -> {user id: join sequence}
        self._ext_idps: dict[str, str] = {}  # provider -> extIdpId
        self._index = itertools.count()
        self._sequence = itertools.count(1)
        self.version = 0
        """Grows with every change to users or memberships (what listings show)."""

    # -- reading

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[UserRecord]:
        return iter(self._users.values())

    def ids(self) -> list[str]:
        """Every user id, oldest user first."""
        return list(self._users)

    def get(self, user_id: str) -> UserRecord:
        """The record of one user; `UnknownUserError` if there is none."""
        record = self._users.get(user_id)
        if record is None:
            raise UnknownUserError(user_id)
        return record

    def resolve(self, value: str, id_type: str | None) -> str:
        """The id of the user an API `userId` + `userIdType` names (the oldest, if several match)."""
        field = USER_ID_TYPES.get(id_type or "user_id")
        if field is None:
            raise ValueError(f"unsupported userIdType {id_type!r}")
        if field == "userId":
            if value in self._users:
                return value
            raise UnknownUserError(value)
        if field == "identity":
            found = self._by_identity.get(value)
        elif field == "sync_relation":
            found = self._by_relation.get(value)
        else:
            candidates = self._by_field[field].get(value)
            found = min(candidates, key=lambda uid: self._users[uid].index) if candidates else None
        if found is None:
            raise UnknownUserError(value)
        return found

    # -- writing

    def add(
        self,
        user_id: str,
        *,
        now: float,
        fields: Mapping[str, Any],
        mfa_data: Mapping[str, Any],
        custom_data: Mapping[str, Any],
        identities: Sequence[Mapping[str, Any] | str],
    ) -> UserRecord:
        """Create a user with these v3 fields, trigger data, custom data and identities."""
        if user_id in self._users:
            raise ValueError(f"user {user_id!r} exists")
        record = UserRecord(
            profile=new_user_profile(user_id, iso_timestamp(now), dict(fields)),
            created=now,
            index=next(self._index),
            mfa=dict(mfa_data),
            custom_data=dict(custom_data),
        )
        self._users[user_id] = record
        for name in _INDEXED_FIELDS:
            self._index_field(name, record.profile.get(name), user_id)
        if identities:
            self.set_identities(record, identities)
        self.version += 1
        return record

    def update(self, record: UserRecord, fields: Mapping[str, Any], updated_at: str) -> None:
        """Change profile fields (already validated) and keep the lookup indexes in step."""
        for name, value in fields.items():
            if name in _INDEXED_FIELDS:
                self._unindex_field(name, record.profile.get(name), record.user_id)
                self._index_field(name, value, record.user_id)
            record.profile[name] = copy.deepcopy(value)
        record.profile["updatedAt"] = updated_at
        self.version += 1

    def touch(self) -> None:
        """Note a change listings can see that the store did not make itself (custom data, the tree)."""
        self.version += 1

    def set_identities(self, record: UserRecord, identities: Sequence[Mapping[str, Any] | str]) -> None:
        """Replace the user's identities (`IdentityDto`s; a bare provider name makes a plausible one)."""
        for old in record.identities:
            self._by_identity.pop(f"{old['extIdpId']}:{old['userIdInIdp']}", None)
            self._by_relation.pop(f"{old['provider']}:{old['userIdInIdp']}", None)
        record.identities = [self._identity(record.user_id, item) for item in identities]
        for new in record.identities:
            self._by_identity[f"{new['extIdpId']}:{new['userIdInIdp']}"] = record.user_id
            self._by_relation[f"{new['provider']}:{new['userIdInIdp']}"] = record.user_id
        self.version += 1

    def delete(self, user_id: str) -> UserRecord:
        """Remove a user with their memberships and index entries; return the record."""
        record = self.get(user_id)
        for name in _INDEXED_FIELDS:
            self._unindex_field(name, record.profile.get(name), user_id)
        self.set_identities(record, ())
        for department_id in record.memberships:
            self._members.get(department_id, {}).pop(user_id, None)
        del self._users[user_id]
        self.version += 1
        return record

    def add_membership(self, record: UserRecord, department_id: str, *, joined_at: str, is_leader: bool) -> bool:
        """Put the user in a department (the first one is main); False if they were already in it."""
        if department_id in record.memberships:
            return False
        sequence = next(self._sequence)
        record.memberships[department_id] = Membership(
            department_id=department_id,
            joined_at=joined_at,
            seq=sequence,
            is_main=not record.memberships,
            is_leader=is_leader,
        )
        self._members.setdefault(department_id, {})[record.user_id] = sequence
        self.version += 1
        return True

    def remove_membership(self, record: UserRecord, department_id: str) -> bool:
        """Take the user out of a department (the next one becomes main); False if they were not in it."""
        removed = record.memberships.pop(department_id, None)
        if removed is None:
            return False
        self._members.get(department_id, {}).pop(record.user_id, None)
        if removed.is_main and record.memberships:
            next(iter(record.memberships.values())).is_main = True
        self.version += 1
        return True

    def member_ids(self, department_ids: set[str]) -> list[str]:
        """Members of any of these departments, ordered by when they first joined one of them."""
        joined: dict[str, int] = {}
        for department_id in department_ids:
            for user_id, sequence in self._members.get(department_id, {}).items():
                if sequence < joined.get(user_id, sequence + 1):
                    joined[user_id] = sequence
        return sorted(joined, key=joined.__getitem__)

    def direct_member_count(self, department_id: str) -> int:
        """How many users are members of exactly this department."""
        return len(self._members.get(department_id, {}))

    def ext_idp_id(self, provider: str) -> str:
        """The id of the pool's identity source for `provider` (one per provider, made on first use)."""
        if provider not in self._ext_idps:
            self._ext_idps[provider] = self._new_id()
        return self._ext_idps[provider]

    # -- internals

    def _identity(self, user_id: str, item: Mapping[str, Any] | str) -> dict[str, Any]:
        given: dict[str, Any] = {"provider": item} if isinstance(item, str) else dict(item)
        provider = given.get("provider")
        if not isinstance(provider, str) or not provider:
            raise ValueError("an identity needs a provider, e.g. 'wechatwork'")
        ext_idp_id = str(given.get("extIdpId") or self.ext_idp_id(provider))
        default_uid = hashlib.sha256(f"{provider}:{user_id}".encode()).hexdigest()[:16]
        identity: dict[str, Any] = {
            "identityId": str(given.get("identityId") or self._new_id()),
            "extIdpId": ext_idp_id,
            "provider": provider,
            "type": str(given.get("type") or IDENTITY_TYPES.get(provider, provider)),
            "userIdInIdp": str(given.get("userIdInIdp") or f"{provider}_{default_uid}"),
            "userInfoInIdp": copy.deepcopy(given.get("userInfoInIdp") or {}),
            "originConnIds": list(given.get("originConnIds") or [ext_idp_id]),
        }
        for optional in ("accessToken", "refreshToken"):
            if given.get(optional) is not None:
                identity[optional] = str(given[optional])
        return identity

    def _index_field(self, name: str, value: Any, user_id: str) -> None:
        if value is not None:
            self._by_field[name].setdefault(value, set()).add(user_id)

    def _unindex_field(self, name: str, value: Any, user_id: str) -> None:
        holders = self._by_field[name].get(value)
        if holders is not None:
            holders.discard(user_id)
            if not holders:
                del self._by_field[name][value]


@dataclass(frozen=True)
class NewUser:
    """What a new user is made of: `EmulatorState.add_user`'s arguments (see there)."""

    username: str | None = None
    email: str | None = None
    phone: str | None = None
    phone_country_code: str = "+86"
    name: str | None = None
    status: str = "Activated"
    departments: Sequence[str] = ()
    user_id: str | None = None
    application_mfa: Sequence[Mapping[str, Any] | str] = ()
    mfa_phone: str | None = None
    mfa_email: str | None = None
    custom_data: Mapping[str, Any] | None = None
    external_id: str | None = None
    user_source_type: str = "adminCreated"
    register_source: Sequence[str] = ("import:manual",)
    identities: Sequence[Mapping[str, Any] | str] = field(default_factory=tuple)

    def fields(self) -> dict[str, Any]:
        """The v3 `UserDto` fields this user starts with (on top of the defaults)."""
        return {
            "username": self.username,
            "email": self.email,
            "phone": self.phone,
            "phoneCountryCode": self.phone_country_code if self.phone else None,
            "name": self.name,
            "status": self.status,
            "emailVerified": self.email is not None,
            "phoneVerified": self.phone is not None,
            "externalId": self.external_id,
            "userSourceType": self.user_source_type,
            "registerSource": list(self.register_source),
        }

    def trigger_data(self) -> dict[str, Any]:
        """The trigger data the user starts with (a fresh `mfaToken`, the factors and contacts given)."""
        return {
            "mfaToken": secrets.token_urlsafe(24),
            "applicationMfa": mfa.normalise_factors(self.application_mfa),
            "mfaPhone": self.mfa_phone,
            "mfaPhoneCountryCode": self.phone_country_code if self.mfa_phone else None,
            "mfaEmail": self.mfa_email,
        }
