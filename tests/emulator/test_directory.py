"""User and department reads: get-user flags, get-user-batch array encodings, get-user-departments paths
and paging, list-department-members with and without sub-departments, list-users filters, and how moving a
department changes all of these."""

from __future__ import annotations

from typing import Any

import pytest

from genauth_emulator import EmulatorServer
from tests.support.emulator import Api

FINANCE = {"fin.alice", "fin.carol", "fin.frank"}


def _usernames(page: dict[str, list[dict[str, str]]]) -> list[str]:
    return [user["username"] for user in page["list"]]


@pytest.mark.parametrize("true_value", ["true", "True", "1"])
def test_get_user_flags_accept_every_true_spelling(api: Api, ids: dict[str, str], true_value: str) -> None:
    """withDepartmentIds/withCustomData accept true, True and 1 and add departmentIds/customData."""
    user = api.data(
        "get-user", {"userId": ids["fin.bob"], "withDepartmentIds": true_value, "withCustomData": true_value}
    )
    assert user["departmentIds"] == [api.server.state.department_id("finance-payroll")]
    assert user["customData"] == {}


def test_get_user_without_flags_has_no_optional_parts(api: Api, ids: dict[str, str]) -> None:
    """Without flags (or with false) there is no departmentIds or customData, but mainDepartmentId is set."""
    user = api.data("get-user", {"userId": ids["fin.bob"], "withDepartmentIds": "false"})
    assert "departmentIds" not in user and "customData" not in user
    assert user["mainDepartmentId"] == api.server.state.department_id("finance-payroll")


def test_get_user_finds_users_by_other_id_types(api: Api, ids: dict[str, str]) -> None:
    """userIdType phone/email/username resolve to the same user; unknown types are 400."""
    for id_type, value in (("phone", "13800138004"), ("email", "eng.dave@acme.example"), ("username", "eng.dave")):
        assert api.data("get-user", {"userId": value, "userIdType": id_type})["userId"] == ids["eng.dave"]
    assert api.get("get-user", {"userId": "x", "userIdType": "sideways"}).json()["statusCode"] == 400


@pytest.mark.parametrize("endpoint", ["get-user", "get-user-departments", "get-mfa-status", "get-user-mfa-info"])
def test_unknown_users_are_404_with_api_code_2004(api: Api, endpoint: str) -> None:
    """Every user endpoint answers an unknown user with statusCode 404 and apiCode 2004."""
    envelope = api.get(endpoint, {"userId": "0" * 24}).json()
    assert (envelope["statusCode"], envelope["apiCode"]) == (404, 2004)


def test_missing_user_id_is_400(api: Api) -> None:
    """get-user without userId is statusCode 400."""
    assert api.get("get-user").json()["statusCode"] == 400


def test_get_user_batch_accepts_every_array_encoding(api: Api, ids: dict[str, str]) -> None:
    """userIds may be repeated, `userIds[]`, indexed or comma-separated."""
    wanted = [ids["fin.alice"], ids["eng.dave"]]
    encodings = [
        [("userIds", wanted[0]), ("userIds", wanted[1])],
        [("userIds[]", wanted[0]), ("userIds[]", wanted[1])],
        [("userIds[0]", wanted[0]), ("userIds[1]", wanted[1])],
        [("userIds", ",".join(wanted))],
    ]
    for params in encodings:
        assert [user["userId"] for user in api.data("get-user-batch", params)] == wanted


def test_get_user_batch_with_an_unknown_user_is_404(api: Api, ids: dict[str, str]) -> None:
    """One unknown id fails the batch with 404/2004; no ids at all is 400."""
    envelope = api.get("get-user-batch", {"userIds": [ids["fin.alice"], "0" * 24]}).json()
    assert (envelope["statusCode"], envelope["apiCode"]) == (404, 2004)
    assert api.get("get-user-batch").json()["statusCode"] == 400


def test_department_paths_run_from_root_to_parent(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """Paths list the ancestors root first, without the department itself; under the root only the root."""
    state = server.state
    root_id = state.organization("acme")["rootDepartmentId"]
    state.add_member(ids["fin.alice"], "finance-payroll")
    state.add_member(ids["fin.alice"], "acme")
    entries = api.data(
        "get-user-departments", {"userId": ids["fin.alice"], "withDepartmentPaths": "true", "orderBy": "Asc"}
    )
    by_code = {entry["code"]: entry for entry in entries["list"]}
    assert [entry["code"] for entry in entries["list"]] == ["finance", "finance-payroll", "acme"]
    assert by_code["finance"]["departmentIdPath"] == [root_id]
    assert by_code["finance"]["departmentCodePath"] == ["acme"]
    assert by_code["finance-payroll"]["departmentIdPath"] == [root_id, state.department_id("finance")]
    assert by_code["finance-payroll"]["departmentNamePath"] == ["ACME", "Finance"]
    assert by_code["acme"]["departmentIdPath"] == [] and by_code["acme"]["isRoot"] is True
    assert by_code["finance"]["isMainDepartment"] is True and by_code["acme"]["isMainDepartment"] is False


def test_department_entries_have_no_paths_unless_asked(api: Api, ids: dict[str, str]) -> None:
    """Without withDepartmentPaths there are no path fields; the entry has the documented keys."""
    (entry,) = api.data("get-user-departments", {"userId": ids["fin.alice"]})["list"]
    assert "departmentIdPath" not in entry
    assert entry["organizationCode"] == "acme"
    assert set(entry) >= {"departmentId", "isRoot", "createdAt", "name", "description", "isLeader", "code", "joinedAt"}


def test_get_user_departments_pages_newest_membership_first(
    api: Api, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """Default order is JoinDepartmentAt Desc; page/limit slice it; totalCount counts all."""
    server.state.add_member(ids["fin.alice"], "engineering")
    server.state.add_member(ids["fin.alice"], "finance-payroll")
    first = api.data("get-user-departments", {"userId": ids["fin.alice"], "limit": 2})
    second = api.data("get-user-departments", {"userId": ids["fin.alice"], "limit": 2, "page": 2})
    assert first["totalCount"] == 3
    assert [entry["code"] for entry in first["list"] + second["list"]] == ["finance-payroll", "engineering", "finance"]


@pytest.mark.parametrize("params", [{"limit": 51}, {"limit": 0}, {"page": 0}, {"limit": "ten"}, {"orderBy": "Up"}])
def test_bad_paging_is_400(api: Api, ids: dict[str, str], params: dict[str, object]) -> None:
    """limit above 50 (or below 1), page below 1, non-numbers and bad orderBy are statusCode 400."""
    assert api.get("get-user-departments", {"userId": ids["fin.alice"], **params}).json()["statusCode"] == 400


def test_department_members_include_children_only_when_asked(api: Api) -> None:
    """finance has alice, carol and frank directly; with children bob (payroll) joins them."""
    base = {"organizationCode": "acme", "departmentId": "finance", "departmentIdType": "code", "limit": 50}
    direct = api.data("list-department-members", base)
    nested = api.data("list-department-members", {**base, "includeChildrenDepartments": "True"})
    assert set(_usernames(direct)) == FINANCE
    assert set(_usernames(nested)) == FINANCE | {"fin.bob"}
    assert nested["totalCount"] == 4


def test_department_members_by_id_and_root_alias(api: Api, server: EmulatorServer) -> None:
    """departmentId may be an id (default type) or `root`; root with children is everyone in the tree."""
    finance_id = server.state.department_id("finance")
    by_id = api.data("list-department-members", {"organizationCode": "acme", "departmentId": finance_id})
    assert set(_usernames(by_id)) == FINANCE
    everyone = api.data(
        "list-department-members",
        {"organizationCode": "acme", "departmentId": "root", "includeChildrenDepartments": "1", "limit": 50},
    )
    assert set(_usernames(everyone)) == FINANCE | {"fin.bob", "eng.dave"}
    assert api.data("list-department-members", {"organizationCode": "acme", "departmentId": "root"})["list"] == []


def test_department_members_default_to_newest_first_and_page(api: Api) -> None:
    """Members come newest-join first by default, oldest first with orderBy=Asc, and page by limit."""
    base = {"organizationCode": "acme", "departmentId": "finance", "departmentIdType": "code"}
    newest = _usernames(api.data("list-department-members", base))
    oldest = _usernames(api.data("list-department-members", {**base, "orderBy": "Asc"}))
    assert oldest == ["fin.alice", "fin.carol", "fin.frank"]
    assert newest == list(reversed(oldest))
    page_two = api.data("list-department-members", {**base, "orderBy": "Asc", "limit": 2, "page": 2})
    assert _usernames(page_two) == ["fin.frank"]


def test_department_members_of_unknown_departments_are_404(api: Api) -> None:
    """An unknown organization or department is statusCode 404; an unsupported id type is 400."""
    assert (
        api.get("list-department-members", {"organizationCode": "nope", "departmentId": "root"}).json()["statusCode"]
        == 404
    )
    unknown = {"organizationCode": "acme", "departmentId": "nope", "departmentIdType": "code"}
    assert api.get("list-department-members", unknown).json()["statusCode"] == 404
    odd_type = {"organizationCode": "acme", "departmentId": "x", "departmentIdType": "open_department_id"}
    assert api.get("list-department-members", odd_type).json()["statusCode"] == 400


def test_moving_a_department_changes_paths_and_subtrees(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """After engineering moves under finance, dave's path includes finance and finance's subtree includes him."""
    server.state.move_department("engineering", "finance")
    (entry,) = api.data("get-user-departments", {"userId": ids["eng.dave"], "withDepartmentPaths": "true"})["list"]
    assert entry["departmentCodePath"] == ["acme", "finance"]
    nested = api.data(
        "list-department-members",
        {
            "organizationCode": "acme",
            "departmentId": "finance",
            "departmentIdType": "code",
            "includeChildrenDepartments": "true",
        },
    )
    assert "eng.dave" in _usernames(nested)


def test_moving_a_department_into_its_own_subtree_is_refused(server: EmulatorServer) -> None:
    """A department cannot move under itself or its descendants, nor can a root move."""
    with pytest.raises(ValueError):
        server.state.move_department("finance", "finance-payroll")
    with pytest.raises(ValueError):
        server.state.move_department("acme", "finance")


def test_membership_changes_show_up_in_the_api(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """add_member/remove_member change get-user-departments; removing the main department promotes the next."""
    erin = ids["new.erin"]
    assert api.data("get-user-departments", {"userId": erin})["list"] == []
    server.state.add_member(erin, "finance")
    server.state.add_member(erin, "engineering")
    server.state.remove_member(erin, "finance")
    (entry,) = api.data("get-user-departments", {"userId": erin})["list"]
    assert (entry["code"], entry["isMainDepartment"]) == ("engineering", True)


def test_list_users_filters_by_fields_and_keywords(api: Api) -> None:
    """advancedFilter field conditions and keywords narrow POST list-users."""

    def usernames(body: Any) -> set[str]:
        envelope = api.post("list-users", body).json()
        assert envelope["statusCode"] == 200, envelope
        return {user["username"] for user in envelope["data"]["list"]}

    assert usernames({"advancedFilter": [{"field": "phone", "operator": "IS_NULL"}]}) == {"fin.carol"}
    assert usernames({"advancedFilter": [{"field": "username", "operator": "IN", "value": ["eng.dave", "x"]}]}) == {
        "eng.dave"
    }
    assert usernames({"keywords": "fin."}) == FINANCE | {"fin.bob"}
    assert usernames({"keywords": "Erin"}) == {"new.erin"}
    everyone_in_tree = {
        "advancedFilter": [
            {
                "field": "department",
                "operator": "IN",
                "value": [
                    {
                        "organizationCode": "acme",
                        "departmentId": "root",
                        "departmentIdType": "department_id",
                        "includeChildrenDepartments": True,
                    }
                ],
            }
        ],
        "options": {"pagination": {"page": 1, "limit": 50}, "withDepartmentIds": True},
    }
    assert usernames(everyone_in_tree) == FINANCE | {"fin.bob", "eng.dave"}


def test_list_users_rejects_bad_requests(api: Api) -> None:
    """Oversized pages, unknown operators and non-array filters are statusCode 400."""
    for body in (
        {"options": {"pagination": {"page": 1, "limit": 51}}},
        {"advancedFilter": [{"field": "phone", "operator": "RESEMBLES", "value": "1"}]},
        {"advancedFilter": {"field": "phone"}},
        {"advancedFilter": [{"field": "department", "operator": "EQUAL", "value": []}]},
    ):
        assert api.post("list-users", body).json()["statusCode"] == 400, body


def test_legacy_list_users_pages(api: Api, ids: dict[str, str]) -> None:
    """GET list-users pages through everyone."""
    page = api.data("list-users", {"page": 2, "limit": 4})
    assert page["totalCount"] == len(ids)
    assert len(page["list"]) == len(ids) - 4


def test_deleted_users_disappear(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """delete_user removes the user from get-user and from department listings."""
    server.state.delete_user(ids["fin.alice"])
    assert api.get("get-user", {"userId": ids["fin.alice"]}).json()["statusCode"] == 404
    members = api.data(
        "list-department-members", {"organizationCode": "acme", "departmentId": "finance", "departmentIdType": "code"}
    )
    assert "fin.alice" not in _usernames(members)
