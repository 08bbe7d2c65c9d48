"""User groups, roles and custom data in the emulator: the state helpers, `get-user-groups`,
`get-user-roles`, `list-group-members`, `get-user` with `withCustomData`, the group and role webhook
payloads, and the sandbox seed's groups and role."""

from __future__ import annotations

import pytest

from genauth_emulator import EmulatorState, UnknownUserError, event_body, seed_sandbox
from genauth_emulator.state import UnknownGroupError, UnknownRoleError
from tests.support.emulator import Api

# --- state ----------------------------------------------------------------------------------------------


def test_group_membership_is_idempotent_and_ordered(state: EmulatorState) -> None:
    """Adding a member twice keeps one entry; members list in join order; removing is a no-op when absent."""
    first, second = (state.add_user(username=name)["userId"] for name in ("a", "b"))
    group_id = state.add_group("contractors", "Contractors")
    state.add_group_member(second, "contractors")
    state.add_group_member(first, "contractors")
    state.add_group_member(second, "contractors")
    assert state.group_member_ids("contractors") == [second, first]
    state.remove_group_member(second, "contractors")
    state.remove_group_member(second, "contractors")
    assert state.group_member_ids("contractors") == [first]
    assert [group["id"] for group in state.user_groups(first)] == [group_id]
    assert state.user_groups(second) == []


def test_groups_and_roles_refuse_unknown_or_repeated_names(state: EmulatorState) -> None:
    """Unknown groups, roles and users raise; a code may not be created twice (per namespace for roles)."""
    user_id = state.add_user(username="a")["userId"]
    state.add_group("g", "G")
    state.add_role("admin")
    state.add_role("admin", namespace="finance-app")
    with pytest.raises(ValueError):
        state.add_group("g", "again")
    with pytest.raises(ValueError):
        state.add_role("admin")
    with pytest.raises(UnknownGroupError):
        state.add_group_member(user_id, "missing")
    with pytest.raises(UnknownRoleError):
        state.assign_role(user_id, "admin", namespace="hr-app")
    with pytest.raises(UnknownUserError):
        state.add_group_member("0" * 24, "g")
    with pytest.raises(UnknownUserError):
        state.user_roles("0" * 24)


def test_roles_are_per_namespace(state: EmulatorState) -> None:
    """A user's roles are listed one namespace at a time; unassigning takes only that role."""
    user_id = state.add_user(username="a")["userId"]
    state.add_role("admin", name="Administrator")
    state.add_role("approver", namespace="finance-app")
    state.assign_role(user_id, "admin")
    state.assign_role(user_id, "approver", namespace="finance-app")
    state.assign_role(user_id, "admin")
    [admin] = state.user_roles(user_id)
    assert (admin["code"], admin["name"], admin["namespace"], admin["namespaceName"]) == (
        "admin",
        "Administrator",
        "default",
        "Default",
    )
    assert [role["code"] for role in state.user_roles(user_id, "finance-app")] == ["approver"]
    assert state.role_member_ids("admin") == [user_id]
    state.unassign_role(user_id, "admin")
    assert state.user_roles(user_id) == []
    assert [role["code"] for role in state.user_roles(user_id, "finance-app")] == ["approver"]


def test_deleting_a_user_removes_their_group_and_role_memberships(state: EmulatorState) -> None:
    """A deleted user is no member of any group and holds no role."""
    user_id = state.add_user(username="a")["userId"]
    state.add_group("g", "G")
    state.add_role("admin")
    state.add_group_member(user_id, "g")
    state.assign_role(user_id, "admin")
    state.delete_user(user_id)
    assert state.group_member_ids("g") == []
    assert state.role_member_ids("admin") == []


def test_add_user_sets_custom_data_and_record_fields(state: EmulatorState) -> None:
    """custom_data, externalId, userSourceType and registerSource given to add_user show in the UserDto."""
    user = state.add_user(
        username="a",
        custom_data={"costCenter": "FIN-01"},
        external_id="EMP-1",
        user_source_type="syncTask",
        register_source=["import:manual", "social:github"],
    )
    assert (user["externalId"], user["userSourceType"], user["registerSource"]) == (
        "EMP-1",
        "syncTask",
        ["import:manual", "social:github"],
    )
    assert "customData" not in user
    assert state.user_view(user["userId"], with_custom_data=True)["customData"] == {"costCenter": "FIN-01"}
    defaults = state.add_user(username="b")
    assert (defaults["externalId"], defaults["userSourceType"], defaults["registerSource"]) == (
        None,
        "adminCreated",
        ["import:manual"],
    )


def test_update_user_merges_custom_data_and_changes_record_fields(state: EmulatorState) -> None:
    """update_user sets custom data keys (None removes one) alongside profile fields such as status."""
    user_id = state.add_user(username="a", custom_data={"costCenter": "FIN-01", "level": "L4"})["userId"]
    state.update_user(user_id, custom_data={"level": "L5", "costCenter": None, "vip": True}, status="Suspended")
    view = state.user_view(user_id, with_custom_data=True)
    assert view["customData"] == {"level": "L5", "vip": True}
    assert view["status"] == "Suspended"
    state.update_user(user_id, externalId="EMP-2")
    assert state.user(user_id)["externalId"] == "EMP-2"


# --- endpoints ------------------------------------------------------------------------------------------


def test_get_user_groups_lists_res_group_dtos(api: Api, ids: dict[str, str]) -> None:
    """get-user-groups answers {totalCount, list} of ResGroupDto for the user's groups; none is an empty list."""
    data = api.data("get-user-groups", {"userId": ids["fin.bob"]})
    assert data["totalCount"] == 1
    [group] = data["list"]
    assert set(group) == {"id", "code", "name", "description", "type", "metadataSource", "members"}
    assert (group["code"], group["type"], group["members"]) == ("contractors", "static", [])
    assert api.data("get-user-groups", {"userId": ids["fin.alice"]}) == {"totalCount": 0, "list": []}
    by_name = api.data("get-user-groups", {"userId": "fin.bob", "userIdType": "username"})
    assert by_name["list"][0]["code"] == "contractors"


def test_get_user_roles_reads_the_default_namespace_unless_told(api: Api, ids: dict[str, str]) -> None:
    """Without `namespace` only default-namespace roles come back; with it, that namespace's roles."""
    state = api.server.state
    state.add_role("approver", namespace="finance-app")
    state.assign_role(ids["eng.dave"], "approver", namespace="finance-app")
    default = api.data("get-user-roles", {"userId": ids["eng.dave"]})
    assert [(role["code"], role["namespace"]) for role in default["list"]] == [("admin", "default")]
    assert set(default["list"][0]) == {
        "id",
        "code",
        "name",
        "description",
        "namespace",
        "namespaceName",
        "status",
        "disableTime",
    }
    scoped = api.data("get-user-roles", {"userId": ids["eng.dave"], "namespace": "finance-app"})
    assert [role["code"] for role in scoped["list"]] == ["approver"]
    assert api.data("get-user-roles", {"userId": ids["eng.dave"], "namespace": "nowhere"}) == {
        "totalCount": 0,
        "list": [],
    }


@pytest.mark.parametrize("endpoint", ["get-user-groups", "get-user-roles"])
def test_group_and_role_reads_follow_the_api_conventions(api: Api, endpoint: str) -> None:
    """Unknown users are 404/2004, a missing userId is 400, and no token is 401."""
    unknown = api.get(endpoint, {"userId": "0" * 24}).json()
    assert (unknown["statusCode"], unknown["apiCode"]) == (404, 2004)
    assert api.get(endpoint).json()["statusCode"] == 400
    assert api.get(endpoint, {"userId": "x"}, headers={}).json()["statusCode"] == 401


def test_list_group_members_pages_user_dtos(api: Api, ids: dict[str, str]) -> None:
    """list-group-members answers a page of UserDtos by group code, with the usual optional parts."""
    state = api.server.state
    for name in ("fin.alice", "eng.dave"):
        state.add_group_member(ids[name], "contractors")
    first = api.data("list-group-members", {"code": "contractors", "limit": 2, "withCustomData": "true"})
    assert first["totalCount"] == 3
    assert [user["username"] for user in first["list"]] == ["fin.bob", "fin.alice"]
    assert first["list"][0]["customData"] == {}
    second = api.data("list-group-members", {"code": "contractors", "limit": 2, "page": 2})
    assert [user["username"] for user in second["list"]] == ["eng.dave"]
    assert "customData" not in second["list"][0]
    assert api.data("list-group-members", {"code": "mfa-exempt"}) == {"totalCount": 0, "list": []}
    assert api.get("list-group-members", {"code": "nobody"}).json()["statusCode"] == 404
    assert api.get("list-group-members").json()["statusCode"] == 400


def test_get_user_returns_custom_data_only_when_asked(api: Api, ids: dict[str, str]) -> None:
    """get-user honours withCustomData: the user's custom data with it, no customData key without it."""
    api.server.state.update_user(ids["fin.alice"], custom_data={"costCenter": "FIN-01", "level": 5})
    with_data = api.data("get-user", {"userId": ids["fin.alice"], "withCustomData": "True"})
    assert with_data["customData"] == {"costCenter": "FIN-01", "level": 5}
    assert "customData" not in api.data("get-user", {"userId": ids["fin.alice"]})


# --- payloads -------------------------------------------------------------------------------------------


def test_group_events_carry_the_pools_group(state: EmulatorState, ids: dict[str, str]) -> None:
    """group:member-* name the pool's group (mfa-exempt unless group_code says otherwise) and full users."""
    body = event_body(state, "group:member-added", ids["fin.bob"], group_code="contractors")
    assert body["data"]["group"] == state.webhook_group("contractors")
    assert body["data"]["group"]["userPoolId"] == state.userpool_id
    assert [user["id"] for user in body["data"]["users"]] == [ids["fin.bob"]]
    default = event_body(state, "group:member-removed", ids["fin.alice"])["data"]["group"]
    assert default["id"] == state.group("mfa-exempt")["id"]


def test_role_events_name_subjects_by_id(state: EmulatorState, ids: dict[str, str]) -> None:
    """role:* carry userIds, groupIds (from group_code) and nodeIds (from department_code)."""
    assigned = event_body(state, "role:assigned", ids["eng.dave"])["data"]
    assert assigned == {"userIds": [ids["eng.dave"]], "groupIds": [], "nodeIds": []}
    to_group = event_body(state, "role:unassigned", group_code="contractors", department_code="finance")["data"]
    assert to_group == {
        "userIds": [],
        "groupIds": [state.group("contractors")["id"]],
        "nodeIds": [state.department_id("finance")],
    }
    with pytest.raises(ValueError, match="user_id"):
        event_body(state, "role:assigned")


def test_group_event_without_the_group_in_the_pool_still_has_a_stable_group() -> None:
    """A pool without an mfa-exempt group gets a made-up one with a stable id."""
    state = EmulatorState()
    user_id = state.add_user(username="a")["userId"]
    first = event_body(state, "group:member-added", user_id)["data"]["group"]
    assert first["code"] == "mfa-exempt"
    assert event_body(state, "group:member-added", user_id)["data"]["group"] == first


# --- the sandbox seed -----------------------------------------------------------------------------------


def test_sandbox_seed_has_groups_and_an_admin() -> None:
    """The seed adds contractors (one Finance member), an empty mfa-exempt group and eng.dave as admin."""
    state = EmulatorState()
    ids = seed_sandbox(state)
    assert state.group_member_ids("contractors") == [ids["fin.bob"]]
    assert "finance-payroll" in {
        d["code"] for d in state.user_departments(ids["fin.bob"], with_paths=False, with_custom_data=False)
    }
    assert state.group_member_ids("mfa-exempt") == []
    assert state.role_member_ids("admin") == [ids["eng.dave"]]
    assert [role["code"] for role in state.user_roles(ids["eng.dave"])] == ["admin"]
