"""Listings that carry facts and stay fast: list-department-members and list-users return departmentIds,
customData and identities per user when asked (as get-user does); get-user shows identities (IdentityDto) and
finds users by identity; a listing is computed once per state of the pool and then paged from a cache, in a
stable order; add_users seeds in bulk."""

from __future__ import annotations

from typing import Any

import pytest

from genauth_emulator import EmulatorServer, EmulatorState
from genauth_emulator.state import UnknownDepartmentError
from tests.support.emulator import Api

IDENTITY_KEYS = {"identityId", "extIdpId", "provider", "type", "userIdInIdp", "userInfoInIdp", "originConnIds"}


@pytest.fixture
def lark_user(server: EmulatorServer) -> dict[str, Any]:
    return server.state.add_user(
        username="lark.lin",
        departments=("finance-payroll",),
        custom_data={"costCenter": "PAY-7"},
        identities=[{"provider": "lark", "userIdInIdp": "ou_123"}, "wechatwork"],
    )


def test_get_user_with_identities_returns_identity_dtos(api: Api, lark_user: dict[str, Any]) -> None:
    """withIdentities adds IdentityDto entries (one identity source per provider in the pool)."""
    user = api.data("get-user", {"userId": lark_user["userId"], "withIdentities": "true"})
    lark, wechatwork = user["identities"]
    assert set(lark) == IDENTITY_KEYS and set(wechatwork) == IDENTITY_KEYS
    assert (lark["provider"], lark["userIdInIdp"], lark["type"]) == ("lark", "ou_123", "lark-internal")
    assert wechatwork["provider"] == "wechatwork" and wechatwork["type"] == "wechatwork:corp:qrconnect"
    assert lark["originConnIds"] == [lark["extIdpId"]]
    assert "identities" not in api.data("get-user", {"userId": lark_user["userId"]})


def test_users_are_found_by_identity_and_sync_relation(api: Api, lark_user: dict[str, Any]) -> None:
    """userIdType identity takes <extIdpId>:<userIdInIdp>, sync_relation <provider>:<userIdInIdp>."""
    [lark, _] = api.data("get-user", {"userId": lark_user["userId"], "withIdentities": "true"})["identities"]
    by_identity = api.data("get-user", {"userId": f"{lark['extIdpId']}:ou_123", "userIdType": "identity"})
    by_relation = api.data("get-user", {"userId": "lark:ou_123", "userIdType": "sync_relation"})
    assert by_identity["userId"] == by_relation["userId"] == lark_user["userId"]
    missing = api.get("get-user", {"userId": "lark:ou_999", "userIdType": "sync_relation"}).json()
    assert (missing["statusCode"], missing["apiCode"]) == (404, 2004)


def test_update_user_replaces_identities(api: Api, server: EmulatorServer, lark_user: dict[str, Any]) -> None:
    """A new identities list replaces the old one, and the old identity no longer finds the user."""
    server.state.update_user(lark_user["userId"], identities=["ldap"])
    [ldap] = api.data("get-user", {"userId": lark_user["userId"], "withIdentities": "true"})["identities"]
    assert ldap["provider"] == "ldap"
    assert api.get("get-user", {"userId": "lark:ou_123", "userIdType": "sync_relation"}).json()["statusCode"] == 404


def test_department_members_carry_facts_when_asked(api: Api, server: EmulatorServer, lark_user: dict[str, Any]) -> None:
    """list-department-members with the with* flags returns departmentIds, customData and identities per user."""
    query = {
        "organizationCode": "acme",
        "departmentId": "finance",
        "departmentIdType": "code",
        "includeChildrenDepartments": "true",
        "orderBy": "Asc",
        "limit": 50,
    }
    flagged = {**query, "withDepartmentIds": "true", "withCustomData": "true", "withIdentities": "true"}
    members = {user["username"]: user for user in api.data("list-department-members", flagged)["list"]}
    lark = members["lark.lin"]
    assert lark["departmentIds"] == [server.state.department_id("finance-payroll")]
    assert lark["customData"] == {"costCenter": "PAY-7"} and lark["identities"][0]["provider"] == "lark"
    assert members["fin.alice"]["identities"] == [] and members["fin.alice"]["customData"] == {}
    plain = api.data("list-department-members", query)["list"]
    assert not any({"departmentIds", "customData", "identities"} & set(user) for user in plain)


def test_list_users_carries_facts_when_asked(api: Api, lark_user: dict[str, Any]) -> None:
    """POST list-users options.withDepartmentIds/withCustomData/withIdentities add the facts to each user."""
    options = {
        "pagination": {"page": 1, "limit": 50},
        "withDepartmentIds": True,
        "withCustomData": True,
        "withIdentities": True,
    }
    users = {user["username"]: user for user in api.post("list-users", {"options": options}).json()["data"]["list"]}
    assert users["lark.lin"]["customData"] == {"costCenter": "PAY-7"}
    assert users["lark.lin"]["identities"][0]["userIdInIdp"] == "ou_123" and users["fin.bob"]["departmentIds"]


def test_paging_a_listing_computes_it_once_in_a_stable_order(api: Api, server: EmulatorServer) -> None:
    """2,000 users over 41 pages: one pass over the pool, every user once, creation order; a change recomputes."""
    state = server.state
    state.add_users([{"username": f"bulk{i:04d}", "departments": ("engineering",)} for i in range(2000)])
    before = state.listing_stats()
    seen: list[str] = []
    for page in range(1, 42):
        body = {
            "options": {"pagination": {"page": page, "limit": 50}, "sort": [{"field": "createdAt", "order": "asc"}]}
        }
        data = api.post("list-users", body).json()["data"]
        seen += [user["userId"] for user in data["list"]]
    after = state.listing_stats()
    assert (after["computed"] - before["computed"], after["cached"] - before["cached"]) == (1, 40)
    assert seen == state.user_ids() and data["totalCount"] == 2006
    state.add_user(username="late")
    body = {"options": {"pagination": {"page": 41, "limit": 50}, "sort": [{"field": "createdAt", "order": "asc"}]}}
    assert [user["username"] for user in api.post("list-users", body).json()["data"]["list"]][-1] == "late"
    assert state.listing_stats()["computed"] == after["computed"] + 1


def test_department_members_page_in_join_order_across_pages(api: Api, server: EmulatorServer) -> None:
    """Asc and Desc pages of a large department cover every member once, in join order (and its reverse)."""
    ids = server.state.add_users([{"username": f"eng{i:03d}", "departments": ("engineering",)} for i in range(120)])
    expected = [server.state.resolve_user_id("eng.dave", "username"), *ids]

    def walk(order: str) -> list[str]:
        found: list[str] = []
        for page in (1, 2, 3):
            query = {"organizationCode": "acme", "departmentId": "engineering", "departmentIdType": "code"}
            data = api.data("list-department-members", {**query, "orderBy": order, "page": page, "limit": 50})
            found += [user["userId"] for user in data["list"]]
        return found

    assert walk("Asc") == expected
    assert walk("Desc") == expected[::-1]


def test_add_users_makes_the_same_users_as_add_user() -> None:
    """add_users takes add_user's arguments per user; the result is indistinguishable but for ids and times."""
    state = EmulatorState()
    state.add_organization("org", "Org")
    state.add_department("org", "d", "D")
    spec = {"username": "twin", "phone": "13900000000", "departments": ("d",), "application_mfa": ["SMS"]}
    [bulk_id] = state.add_users([spec])
    single = state.add_user(**{**spec, "username": "twin2"})
    bulk = state.user(bulk_id)
    ignore = {"userId", "username", "createdAt", "updatedAt", "passwordLastSetAt", "statusChangedAt", "signedUp"}
    assert {k: v for k, v in bulk.items() if k not in ignore} == {k: v for k, v in single.items() if k not in ignore}
    assert state.get_mfa(bulk_id)["applicationMfa"] == state.get_mfa(single["userId"])["applicationMfa"]
    with pytest.raises(UnknownDepartmentError):
        state.add_users([{"username": "lost", "departments": ("nowhere",)}])


def test_organization_and_root_department_types_are_strings(api: Api) -> None:
    """OrganizationDto.status is the string "true"; the root names its parent "root" with an empty code."""
    [organization] = api.data("list-organizations")["list"]
    assert organization["status"] == "true" and isinstance(organization["updatedAt"], str)
    root = api.data("get-department", {"organizationCode": "acme", "departmentId": "root"})
    assert (root["parentDepartmentId"], root["parentDepartmentCode"]) == ("root", "")
    finance = api.data(
        "get-department", {"organizationCode": "acme", "departmentId": "finance", "departmentIdType": "code"}
    )
    assert finance["parentDepartmentCode"] == "acme" and finance["membersCount"] == 3


def test_delete_webhook_answers_success(api: Api) -> None:
    """delete-webhook's data is {success: true}, as IsSuccessRespDto says."""
    assert api.post("delete-webhook", {"webhookIds": ["0" * 24]}).json()["data"] == {"success": True}
