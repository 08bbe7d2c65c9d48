"""The legacy ("v2") objects GenAuth puts inside webhook bodies (docs/genauth.md §1.8, §1.9): user, node, organization.

They differ from the v3 API shapes: the user is keyed `id` (not `userId`), carries its password hash, salt and
ID token, and never says which departments it belongs to. `state.EmulatorState` calls these under its lock.
"""

from __future__ import annotations

from typing import Any

from genauth_emulator.records import Department, Organization, UserRecord

# Profile fields copied under the same name, in the order the webhook examples list them.
_BEFORE_SECRETS = ("email", "phone", "username")
_PERSONAL = (
    "name",
    "givenName",
    "familyName",
    "middleName",
    "profile",
    "preferredUsername",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "address",
    "formatted",
    "streetAddress",
)


def webhook_user(record: UserRecord, userpool_id: str) -> dict[str, Any]:
    """Return the user as webhooks show it, with every §1.8 field in the documented order."""
    profile = record.profile
    leaked = record.secrets(userpool_id)
    user: dict[str, Any] = {
        "id": record.user_id,
        "createdAt": profile["createdAt"],
        "updatedAt": profile["updatedAt"],
        "userPoolId": userpool_id,
        "isRoot": False,
        "status": profile["status"],
        "oauth": None,
    }
    user.update({name: profile.get(name) for name in _BEFORE_SECRETS})
    user.update(
        {
            "unionid": None,
            "openid": None,
            "nickname": profile.get("nickname"),
            "company": profile.get("company"),
            "photo": profile.get("photo"),
            "browser": profile.get("browser"),
            "device": profile.get("device"),
            "password": leaked.password_hash,
            "salt": leaked.salt,
            "token": leaked.id_token,
            "tokenExpiredAt": leaked.token_expired_at,
            "loginsCount": profile.get("loginsCount", 0),
            "lastIp": profile.get("lastIp"),
        }
    )
    user.update({name: profile.get(name) for name in _PERSONAL})
    user.update(
        {
            "locality": None,
            "region": profile.get("region"),
            "postalCode": profile.get("postalCode"),
            "city": profile.get("city"),
            "province": profile.get("province"),
            "country": profile.get("country"),
            "registerSource": list(profile.get("registerSource") or []),
            "secretInfo": None,
            "emailVerified": profile.get("emailVerified", False),
            "phoneVerified": profile.get("phoneVerified", False),
            "lastLogin": profile.get("lastLogin"),
            "blocked": profile["status"] == "Suspended",
            "isDeleted": False,
            "sendSmsCount": 0,
            "sendSmsLimitCount": 1000,
            "dataVersion": None,
            "encryptedPassword": leaked.encrypted_password,
            "signedUp": profile.get("signedUp"),
            "externalId": profile.get("externalId"),
            # Always null in GenAuth's examples: webhooks do not tell you the user's departments.
            "mainDepartmentId": None,
            "mainDepartmentCode": None,
            "lastMfaTime": profile.get("lastMfaTime"),
            "passwordSecurityLevel": profile.get("passwordSecurityLevel", 1),
            "resetPasswordOnFirstLogin": False,
            "source": None,
        }
    )
    return user


def webhook_node(department: Department, organization: Organization, userpool_id: str) -> dict[str, Any]:
    """Return a department as the `node` of `organization:*` webhooks (assumes node id == v3 departmentId)."""
    return {
        "id": department.id,
        "createdAt": department.created_at,
        "updatedAt": department.updated_at,
        "userPoolId": userpool_id,
        "orgId": organization.id,
        "name": department.name,
        "nameI18n": None,
        "description": department.description or None,
        "descriptionI18n": None,
        "order": None,
        "code": department.code,
        "__id": None,
        "__parentid": None,
        "__groupid": None,
        "source": [],
        "dataVersion": None,
        "sourceData": None,
    }


def webhook_organization(organization: Organization, userpool_id: str) -> dict[str, Any]:
    """Return an organization as the `organization` of `organization:*` webhooks."""
    return {
        "id": organization.id,
        "createdAt": organization.created_at,
        "updatedAt": organization.created_at,
        "userPoolId": userpool_id,
        "rootNodeId": organization.root_id,
        "logo": None,
        "thirdPartyOrgId": None,
    }
