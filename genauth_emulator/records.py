"""Plain records behind the emulator's user pool, and the helpers that mint ids and timestamps for them.

The aggregate stores (`users`, `directory`, `groups`, `roles`) own instances of these;
`state.EmulatorState` guards them all with its one lock, so nothing here locks or knows about HTTP. Ids look
like MongoDB ObjectIds (24 lowercase hex, seconds first) because GenAuth's do.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

DEFAULT_PHOTO = "https://files.authing.co/authing-console/default-user-avatar.png"


def new_object_id(now: float) -> str:
    """Return a fresh 24-hex id: 4 bytes of epoch seconds, then 8 random bytes."""
    return f"{int(now) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def iso_timestamp(now: float) -> str:
    """Format epoch seconds the way GenAuth does: ISO-8601 UTC with milliseconds and a `Z`."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: GenAuth's delivery log writes local China time with its offset, e.g. `2022-09-20T08:55:00.188+0800`.
_LOG_ZONE = timezone(timedelta(hours=8))


def log_timestamp(now: float) -> str:
    """Format epoch seconds as the webhook log's `timestamp` does: milliseconds and a `+0800` offset."""
    moment = datetime.fromtimestamp(now, _LOG_ZONE)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def b64url(raw: bytes) -> str:
    """Encode bytes as unpadded base64url, the alphabet JWT segments use."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def fake_id_token(user_id: str, userpool_id: str, now: float) -> str:
    """Return a JWT-shaped string like the `token` field GenAuth puts in webhook user objects."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": user_id, "aud": userpool_id, "iat": int(now), "exp": int(now) + 1_209_600}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{b64url(secrets.token_bytes(32))}"


@dataclass
class Organization:
    """An organization; its root department is an ordinary `Department` whose `parent_id` is None."""

    code: str
    name: str
    id: str
    root_id: str
    created_at: str


@dataclass
class Department:
    """One node of an organization's department tree."""

    id: str
    organization_code: str
    code: str
    name: str
    parent_id: str | None
    created_at: str
    updated_at: str
    description: str = ""

    @property
    def is_root(self) -> bool:
        """True for the organization's root node."""
        return self.parent_id is None


@dataclass
class Membership:
    """A user's place in one department."""

    department_id: str
    joined_at: str
    seq: int
    is_main: bool
    is_leader: bool = False


_ID_TOKEN_LIFETIME = 14 * 24 * 3600


@dataclass(frozen=True)
class LeakedSecrets:
    """What webhook user objects carry and the v3 API never shows: password hash, salt, an ID token."""

    password_hash: str
    salt: str
    encrypted_password: str
    id_token: str
    token_expired_at: str


@dataclass
class UserRecord:
    """A user: the v3 `UserDto` fields, identities, memberships, MFA trigger data and the secrets webhooks leak.

    `index` is the user's place in creation order (the order listings use); `created` is the creation time in
    epoch seconds. The leaked secrets are minted on first use, so bulk seeding does not pay for them.
    """

    profile: dict[str, Any]
    created: float = 0.0
    index: int = 0
    mfa: dict[str, Any] = field(default_factory=dict)
    custom_data: dict[str, Any] = field(default_factory=dict)
    identities: list[dict[str, Any]] = field(default_factory=list)
    memberships: dict[str, Membership] = field(default_factory=dict)
    _secrets: LeakedSecrets | None = None

    @property
    def user_id(self) -> str:
        """The user's 24-hex id (`userId` in v3, `id` in webhooks)."""
        return str(self.profile["userId"])

    def secrets(self, userpool_id: str) -> LeakedSecrets:
        """The user's password hash, salt and ID token, minted the first time anyone asks."""
        if self._secrets is None:
            self._secrets = LeakedSecrets(
                password_hash=secrets.token_hex(16),
                salt=secrets.token_hex(6),
                encrypted_password=base64.b64encode(secrets.token_bytes(48)).decode("ascii"),
                id_token=fake_id_token(self.user_id, userpool_id, self.created),
                token_expired_at=iso_timestamp(self.created + _ID_TOKEN_LIFETIME),
            )
        return self._secrets

    def main_department_id(self) -> str | None:
        """The id of the department marked main, if the user belongs to any."""
        for membership in self.memberships.values():
            if membership.is_main:
                return membership.department_id
        return None


def new_user_profile(user_id: str, timestamp: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Build a v3 `UserDto` with every documented field, defaults first, then `fields` on top."""
    profile: dict[str, Any] = {
        "userId": user_id,
        "createdAt": timestamp,
        "updatedAt": timestamp,
        "status": "Activated",
        "workStatus": "Active",
        "externalId": None,
        "email": None,
        "phone": None,
        "phoneCountryCode": None,
        "username": None,
        "name": None,
        "nickname": None,
        "photo": DEFAULT_PHOTO,
        "loginsCount": 0,
        "lastLogin": None,
        "lastIp": None,
        "gender": "U",
        "emailVerified": False,
        "phoneVerified": False,
        "passwordLastSetAt": timestamp,
        "birthdate": None,
        "country": None,
        "province": None,
        "city": None,
        "address": None,
        "streetAddress": None,
        "postalCode": None,
        "company": None,
        "browser": None,
        "device": None,
        "givenName": None,
        "familyName": None,
        "middleName": None,
        "profile": None,
        "preferredUsername": None,
        "website": None,
        "zoneinfo": None,
        "locale": None,
        "formatted": None,
        "region": None,
        "userSourceType": "adminCreated",
        "userSourceId": None,
        "lastLoginApp": None,
        "mainDepartmentId": None,
        "lastMfaTime": None,
        "passwordSecurityLevel": 1,
        "resetPasswordOnNextLogin": False,
        "registerSource": ["import:manual"],
        "statusChangedAt": timestamp,
        "signedUp": timestamp,
    }
    profile.update(fields)
    return profile
