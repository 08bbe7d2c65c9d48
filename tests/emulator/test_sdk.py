"""The official GenAuth Python SDK (5.1.0) works against the emulator unchanged: this is the evidence that the
emulator speaks GenAuth's wire format (token, headers, envelope, parameter encoding)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from genauth.GenAuthException import GenAuthException
from genauth.ManagementClient import ManagementClient

from genauth_emulator import EmulatorServer
from genauth_emulator.app import THROTTLE_MESSAGE


@pytest.fixture
def client(server: EmulatorServer) -> Any:
    return ManagementClient(server.state.access_key_id, server.state.access_key_secret, host=server.url)


def test_sdk_get_user_returns_the_v3_user(client: Any, ids: dict[str, str]) -> None:
    """get_user answers the v3 UserDto (keyed userId) of the seeded user."""
    answer = client.get_user(ids["fin.alice"])
    assert answer["statusCode"] == 200
    assert answer["data"]["userId"] == ids["fin.alice"]
    assert answer["data"]["username"] == "fin.alice"
    assert answer["data"]["phone"] == "13800138001"
    assert answer["data"]["phoneCountryCode"] == "+86"


def test_sdk_booleans_arrive_as_python_str_bool_and_count_as_true(
    client: Any, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """The SDK sends `withCustomData=True` (Python's str(bool)); the emulator treats it as true."""
    answer = client.get_user(ids["fin.alice"], with_custom_data=True)
    assert answer["data"]["customData"] == {}
    assert server.journal.entries("/api/v3/get-user")[-1].query["withCustomData"] == ["True"]


def test_sdk_get_user_batch_sends_repeated_keys_and_gets_a_plain_array(
    client: Any, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """get_user_batch sends `userIds=a&userIds=b` and receives a plain array of users in that order."""
    wanted = [ids["fin.bob"], ids["eng.dave"]]
    answer = client.get_user_batch(wanted)
    assert [user["userId"] for user in answer["data"]] == wanted
    assert server.journal.entries("/api/v3/get-user-batch")[-1].query["userIds"] == wanted


def test_sdk_mfa_status_round_trips_what_was_set(client: Any, ids: dict[str, str]) -> None:
    """What set_users_mfa_status stores is exactly what get_user_mfa_status returns (replace mode)."""
    user_id = ids["fin.alice"]
    current = client.get_user_mfa_status(user_id)["data"]
    wanted = {
        **current,
        "mfaPhone": "13800138001",
        "mfaPhoneCountryCode": "+86",
        "applicationMfa": [{"mfaPolicy": "SMS", "status": 1, "sort": 0}],
    }
    answer = client.set_users_mfa_status(mfa_trigger_data=wanted, user_id=user_id)
    assert answer["statusCode"] == 200
    assert answer["data"] == {"success": True}
    assert client.get_user_mfa_status(user_id)["data"] == wanted


def test_sdk_get_user_mfa_info_reports_factors_as_strings(client: Any, ids: dict[str, str]) -> None:
    """get_user_mfa_info reports each factor as the string enabled/disabled (fin.frank has SMS)."""
    assert client.get_user_mfa_info(ids["fin.frank"])["data"] == {
        "totpStatus": "disabled",
        "faceMfaStatus": "disabled",
        "smsMfaStatus": "enabled",
        "emailMfaStatus": "disabled",
    }


def test_sdk_list_users_pages_and_filters_by_department(client: Any, ids: dict[str, str]) -> None:
    """list_users honours options.pagination and the documented department filter."""
    first_page = client.list_users(options={"pagination": {"page": 1, "limit": 2}})["data"]
    assert first_page["totalCount"] == len(ids)
    assert len(first_page["list"]) == 2
    finance = client.list_users(
        advanced_filter=[
            {
                "field": "department",
                "operator": "IN",
                "value": [
                    {
                        "organizationCode": "acme",
                        "departmentId": "finance",
                        "departmentIdType": "code",
                        "includeChildrenDepartments": True,
                    }
                ],
            }
        ],
        options={"pagination": {"page": 1, "limit": 50}, "withDepartmentIds": True},
    )["data"]
    assert {user["username"] for user in finance["list"]} == {"fin.alice", "fin.bob", "fin.carol", "fin.frank"}
    assert all(user["departmentIds"] for user in finance["list"])


def test_sdk_raw_request_reads_department_paths(client: Any, ids: dict[str, str], server: EmulatorServer) -> None:
    """The SDK has no get_user_departments; its http_client reaches the path and gets root-first paths."""
    answer = client.http_client.request(
        method="GET",
        url="/api/v3/get-user-departments",
        params={"userId": ids["fin.bob"], "withDepartmentPaths": True},
    )
    (payroll,) = answer["data"]["list"]
    assert payroll["code"] == "finance-payroll"
    assert payroll["departmentCodePath"] == ["acme", "finance"]
    assert payroll["departmentNamePath"] == ["ACME", "Finance"]
    assert payroll["departmentIdPath"] == [
        server.state.organization("acme")["rootDepartmentId"],
        server.state.department_id("finance"),
    ]


def test_sdk_headers_are_recorded_in_the_journal(client: Any, server: EmulatorServer, ids: dict[str, str]) -> None:
    """The journal shows the SDK's headers, with the pool id from the token and the token redacted."""
    client.get_user(ids["fin.alice"])
    (token_call,) = server.journal.entries("/api/v3/get-management-token")
    assert token_call.body == {"accessKeyId": server.state.access_key_id, "accessKeySecret": "<redacted>"}
    headers = server.journal.entries("/api/v3/get-user")[-1].headers
    assert headers["x-genauth-userpool-id"] == server.state.userpool_id
    assert headers["x-genauth-sdk-version"] == "genauth-py-sdk:5.1.0"
    assert headers["authorization"] == "Bearer <redacted>"


def test_sdk_reports_unknown_users_as_404_with_api_code_2004(client: Any) -> None:
    """An unknown user id is statusCode 404, apiCode 2004, delivered with HTTP 200 (the SDK does not raise)."""
    answer = client.get_user("0" * 24)
    assert answer["statusCode"] == 404
    assert answer["apiCode"] == 2004


def test_sdk_never_refreshes_a_token_the_server_rejects(
    client: Any, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """After the server expires its tokens, the SDK keeps sending the cached one and keeps getting 401."""
    assert client.get_user(ids["fin.alice"])["statusCode"] == 200
    server.state.expire_tokens()
    assert client.get_user(ids["fin.alice"])["statusCode"] == 401
    assert client.get_user(ids["fin.alice"])["statusCode"] == 401
    assert server.journal.count("/api/v3/get-management-token") == 1


def test_sdk_raises_on_wrong_credentials(server: EmulatorServer) -> None:
    """Wrong AK/SK make the SDK's token provider raise GenAuthException carrying statusCode 401."""
    client = ManagementClient(server.state.access_key_id, "wrong-secret", host=server.url)
    with pytest.raises(GenAuthException) as raised:
        client.get_user("0" * 24)
    assert raised.value.statusCode == 401


def test_sdk_hides_http_status_and_retry_after(client: Any, server: EmulatorServer, ids: dict[str, str]) -> None:
    """On an HTTP 429 the SDK just returns the JSON body: callers never see the status or Retry-After."""
    client.get_user(ids["fin.alice"])
    server.faults.add("http_429", path="get-user", retry_after=30)
    assert client.get_user(ids["fin.alice"]) == {"statusCode": 429, "message": THROTTLE_MESSAGE}


def test_sdk_crashes_on_a_non_json_gateway_error(client: Any, server: EmulatorServer, ids: dict[str, str]) -> None:
    """The SDK parses every response as JSON, so a gateway's HTML 503 raises a JSON decode error."""
    client.get_user(ids["fin.alice"])
    server.faults.add("http_503", path="get-user")
    with pytest.raises(requests.JSONDecodeError):
        client.get_user(ids["fin.alice"])
