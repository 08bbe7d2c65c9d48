"""Webhook bodies: the legacy user object has every documented field (secrets included, so leaks can be
tested), and each event has the envelope and data shape of docs/genauth.md §1.10."""

from __future__ import annotations

import re

import pytest

from genauth_emulator import EmulatorState, event_body

WEBHOOK_USER_FIELDS = [
    "id",
    "createdAt",
    "updatedAt",
    "userPoolId",
    "isRoot",
    "status",
    "oauth",
    "email",
    "phone",
    "username",
    "unionid",
    "openid",
    "nickname",
    "company",
    "photo",
    "browser",
    "device",
    "password",
    "salt",
    "token",
    "tokenExpiredAt",
    "loginsCount",
    "lastIp",
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
    "locality",
    "region",
    "postalCode",
    "city",
    "province",
    "country",
    "registerSource",
    "secretInfo",
    "emailVerified",
    "phoneVerified",
    "lastLogin",
    "blocked",
    "isDeleted",
    "sendSmsCount",
    "sendSmsLimitCount",
    "dataVersion",
    "encryptedPassword",
    "signedUp",
    "externalId",
    "mainDepartmentId",
    "mainDepartmentCode",
    "lastMfaTime",
    "passwordSecurityLevel",
    "resetPasswordOnFirstLogin",
    "source",
]
NODE_FIELDS = [
    "id",
    "createdAt",
    "updatedAt",
    "userPoolId",
    "orgId",
    "name",
    "nameI18n",
    "description",
    "descriptionI18n",
    "order",
    "code",
    "__id",
    "__parentid",
    "__groupid",
    "source",
    "dataVersion",
    "sourceData",
]
HEX24 = re.compile(r"[0-9a-f]{24}")


def test_webhook_user_has_every_documented_field_in_order(state: EmulatorState, ids: dict[str, str]) -> None:
    """webhook_user lists the §1.8 fields in the documented order, keyed `id`, with no department info."""
    user = state.webhook_user(ids["fin.alice"])
    assert list(user) == WEBHOOK_USER_FIELDS
    assert user["id"] == ids["fin.alice"] and user["userPoolId"] == state.userpool_id
    assert user["mainDepartmentId"] is None and user["mainDepartmentCode"] is None
    assert "userId" not in user and "phoneCountryCode" not in user


def test_webhook_user_carries_realistic_secrets_that_stay_stable(state: EmulatorState, ids: dict[str, str]) -> None:
    """password is a 32-hex hash, salt 12 characters, token a three-part JWT; the same on every call."""
    user = state.webhook_user(ids["fin.alice"])
    assert re.fullmatch(r"[0-9a-f]{32}", user["password"])
    assert len(user["salt"]) == 12
    assert user["token"].startswith("eyJ") and user["token"].count(".") == 2
    assert user["encryptedPassword"]
    assert state.webhook_user(ids["fin.alice"])["password"] == user["password"]
    assert state.webhook_user(ids["fin.bob"])["password"] != user["password"]


def test_login_data_is_the_user_itself(state: EmulatorState, ids: dict[str, str]) -> None:
    """login's data is the user object (not wrapped in `user`)."""
    body = event_body(state, "login", ids["fin.alice"])
    assert body == {"eventName": "login", "data": state.webhook_user(ids["fin.alice"])}


@pytest.mark.parametrize("event_name", ["register", "user:created"])
def test_creation_events_add_registration_extras(state: EmulatorState, ids: dict[str, str], event_name: str) -> None:
    """register and user:created carry the user plus _id, registerMethod, registerInClient and lastIP."""
    data = event_body(state, event_name, ids["fin.alice"])["data"]
    assert data["_id"] == data["id"] == ids["fin.alice"]
    assert data["registerInClient"] == state.userpool_id
    assert {"registerMethod", "lastIP"} <= set(data)


def test_user_updated_has_user_and_updates(state: EmulatorState, ids: dict[str, str]) -> None:
    """user:updated is {user, updates}."""
    data = event_body(state, "user:updated", ids["fin.carol"], updates={"phone": "13800138003"})["data"]
    assert data["user"]["id"] == ids["fin.carol"]
    assert data["updates"] == {"phone": "13800138003"}


@pytest.mark.parametrize("event_name", ["organization:member-added", "organization:member-removed"])
def test_membership_events_have_user_and_legacy_node(
    state: EmulatorState, ids: dict[str, str], event_name: str
) -> None:
    """Member events are {user, node}; node has the §1.9 fields and id == the v3 departmentId."""
    data = event_body(state, event_name, ids["new.erin"], department_code="finance")["data"]
    assert list(data["node"]) == NODE_FIELDS
    assert data["node"]["id"] == state.department_id("finance")
    assert data["node"]["code"] == "finance"
    assert data["node"]["orgId"] == state.organization("acme")["orgId"]
    assert data["user"]["id"] == ids["new.erin"]
    assert ("identities" in data["user"]) is (event_name == "organization:member-removed")


def test_list_events_name_their_users(state: EmulatorState, ids: dict[str, str]) -> None:
    """user:deleted and group:member-added list full users; role:assigned lists ids."""
    pair = [ids["fin.alice"], ids["eng.dave"]]
    deleted = event_body(state, "user:deleted", users=pair)["data"]
    assert [user["id"] for user in deleted["users"]] == pair
    group = event_body(state, "group:member-added", ids["fin.alice"])["data"]
    assert group["group"]["code"] == "mfa-exempt" and HEX24.fullmatch(group["group"]["id"])
    assert [user["id"] for user in group["users"]] == [ids["fin.alice"]]
    role = event_body(state, "role:assigned", users=pair, department_code="finance")["data"]
    assert role == {"userIds": pair, "groupIds": [], "nodeIds": [state.department_id("finance")]}


def test_small_events(state: EmulatorState, ids: dict[str, str]) -> None:
    """mfa:verified is {userId, isValid, type}; test is the console's description; node-moved names parents."""
    assert event_body(state, "mfa:verified", ids["fin.alice"], mfa_type="EMAIL", is_valid=False)["data"] == {
        "userId": ids["fin.alice"],
        "isValid": False,
        "type": "EMAIL",
    }
    assert event_body(state, "test") == {"eventName": "test", "data": {"description": "A test from GenAuth Webhook"}}
    moved = event_body(state, "organization:node-moved", department_code="finance-payroll")["data"]
    assert moved["parentNode"]["code"] == "finance"
    assert moved["organization"]["rootNodeId"] == state.organization("acme")["rootDepartmentId"]


def test_blocked_and_archived_events_reflect_the_change(state: EmulatorState, ids: dict[str, str]) -> None:
    """user:blocked sets blocked, user:archived sets status Archived, inside data.user."""
    assert event_body(state, "user:blocked", ids["fin.alice"])["data"]["user"]["blocked"] is True
    assert event_body(state, "user:archived", ids["fin.alice"])["data"]["user"]["status"] == "Archived"


def test_events_refuse_missing_arguments_and_unknown_names(state: EmulatorState, ids: dict[str, str]) -> None:
    """Unknown events and events missing their user or department raise ValueError."""
    with pytest.raises(ValueError, match="unsupported event"):
        event_body(state, "user:teleported", ids["fin.alice"])
    with pytest.raises(ValueError, match="user_id"):
        event_body(state, "login")
    with pytest.raises(ValueError, match="department_code"):
        event_body(state, "organization:member-added", ids["fin.alice"])
