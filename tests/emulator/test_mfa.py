"""MFA endpoints: set-mfa-status validation and its replace/merge modes, get-mfa-status defaults, and the
enabled/disabled summary of get-user-mfa-info."""

from __future__ import annotations

from typing import Any

import pytest

from genauth_emulator import EmulatorServer
from tests.support.emulator import Api

SMS = {"mfaPolicy": "SMS", "status": 1, "sort": 0}
EMAIL = {"mfaPolicy": "EMAIL", "status": 1, "sort": 1}


def _set(api: Api, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return api.post("set-mfa-status", {"userId": user_id, "mfaTriggerData": data}).json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"mfaTriggerData": {"mfaToken": "t", "applicationMfa": []}}, "userId"),
        ({"userId": 42, "mfaTriggerData": {"mfaToken": "t", "applicationMfa": []}}, "userId"),
        ({"userId": "USER"}, "mfaTriggerData"),
        ({"userId": "USER", "mfaTriggerData": []}, "mfaTriggerData"),
        ({"userId": "USER", "mfaTriggerData": {"applicationMfa": []}}, "mfaToken"),
        ({"userId": "USER", "mfaTriggerData": {"mfaToken": 1, "applicationMfa": []}}, "mfaToken"),
        ({"userId": "USER", "mfaTriggerData": {"mfaToken": "t"}}, "applicationMfa"),
        ({"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": {}}}, "applicationMfa"),
        ({"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": ["SMS"]}}, "applicationMfa[0]"),
        (
            {"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [{**SMS, "mfaPolicy": "VOICE"}]}},
            "mfaPolicy",
        ),
        (
            {"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [{**SMS, "status": "1"}]}},
            "status",
        ),
        (
            {"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [{**SMS, "status": True}]}},
            "status",
        ),
        (
            {
                "userId": "USER",
                "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [{"mfaPolicy": "SMS", "status": 1}]},
            },
            "sort",
        ),
        ({"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [], "mfaPhone": 138}}, "mfaPhone"),
        (
            {"userId": "USER", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [], "totpMfaEnabled": "yes"}},
            "totpMfaEnabled",
        ),
    ],
)
def test_set_mfa_status_rejects_malformed_bodies_with_400(
    api: Api, ids: dict[str, str], body: dict[str, Any], complaint: str
) -> None:
    """Each malformed body is statusCode 400 (HTTP 200) with a message naming the bad field."""
    if body.get("userId") == "USER":
        body = {**body, "userId": ids["fin.alice"]}
    answer = api.post("set-mfa-status", body)
    assert answer.status_code == 200
    assert answer.json()["statusCode"] == 400
    assert complaint in answer.json()["message"]


def test_set_mfa_status_for_an_unknown_user_is_404_2004(api: Api) -> None:
    """A well-formed write for an unknown user is statusCode 404 with apiCode 2004."""
    answer = _set(api, "0" * 24, {"mfaToken": "t", "applicationMfa": [SMS]})
    assert (answer["statusCode"], answer["apiCode"]) == (404, 2004)


def test_set_mfa_status_finds_users_by_user_id_type(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """userIdType=username addresses the user by username."""
    body = {
        "userId": "fin.alice",
        "userIdType": "username",
        "mfaTriggerData": {"mfaToken": "t", "applicationMfa": [SMS]},
    }
    assert api.post("set-mfa-status", body).json()["data"] == {"success": True}
    assert server.state.get_mfa(ids["fin.alice"])["applicationMfa"] == [SMS]


def test_get_mfa_status_of_an_untouched_user_has_every_key(api: Api, ids: dict[str, str]) -> None:
    """A user never written to has a generated mfaToken, no factors, and every other key null/false."""
    data = api.data("get-mfa-status", {"userId": ids["fin.alice"]})
    assert isinstance(data["mfaToken"], str) and len(data["mfaToken"]) >= 16
    assert data["applicationMfa"] == []
    assert data["faceMfaEnabled"] is False and data["totpMfaEnabled"] is False
    assert all(data[key] is None for key in ("mfaPhone", "mfaEmail", "username", "phone", "nickname"))


def test_mfa_tokens_differ_per_user(api: Api, ids: dict[str, str]) -> None:
    """Each user gets their own mfaToken at creation."""
    tokens = {api.data("get-mfa-status", {"userId": user_id})["mfaToken"] for user_id in ids.values()}
    assert len(tokens) == len(ids)


def test_replace_mode_stores_exactly_what_was_sent(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """In replace mode (the default), factors and fields not sent are gone, and a sent null clears a field."""
    user_id = ids["fin.bob"]  # has EMAIL enabled and an mfaEmail
    token = server.state.get_mfa(user_id)["mfaToken"]
    assert _set(api, user_id, {"mfaToken": token, "applicationMfa": [SMS], "mfaEmail": None})["statusCode"] == 200
    stored = server.state.get_mfa(user_id)
    assert stored["applicationMfa"] == [SMS]
    assert stored["mfaEmail"] is None
    assert stored["mfaToken"] == token


def test_replace_keeps_the_stored_mfa_token_when_none_is_given(server: EmulatorServer, ids: dict[str, str]) -> None:
    """State.set_mfa without an mfaToken keeps the user's token (the API itself requires one)."""
    before = server.state.get_mfa(ids["fin.alice"])["mfaToken"]
    server.state.set_mfa(ids["fin.alice"], {"applicationMfa": [SMS], "mfaPhone": "13800138001"})
    after = server.state.get_mfa(ids["fin.alice"])
    assert after["mfaToken"] == before
    assert after["mfaPhone"] == "13800138001"


def test_merge_mode_merges_factors_by_policy(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """In merge mode, new factors are appended, same-policy factors replaced in place, other fields kept."""
    server.state.set_mode = "merge"
    user_id = ids["fin.bob"]
    bob_email = EMAIL | {"sort": 0}
    assert server.state.get_mfa(user_id)["applicationMfa"] == [bob_email]
    _set(api, user_id, {"mfaToken": "t", "applicationMfa": [SMS | {"sort": 1}], "mfaEmail": None})
    assert server.state.get_mfa(user_id)["applicationMfa"] == [bob_email, SMS | {"sort": 1}]
    assert server.state.get_mfa(user_id)["mfaEmail"] == "fin.bob@acme.example"
    _set(api, user_id, {"mfaToken": "t", "applicationMfa": [bob_email | {"status": 0}]})
    assert server.state.get_mfa(user_id)["applicationMfa"] == [bob_email | {"status": 0}, SMS | {"sort": 1}]


def test_mfa_info_follows_enabled_factors(api: Api, ids: dict[str, str]) -> None:
    """get-user-mfa-info says enabled only for factors with status 1."""
    user_id = ids["fin.alice"]
    _set(
        api,
        user_id,
        {
            "mfaToken": "t",
            "applicationMfa": [SMS, {**EMAIL, "status": 0}, {"mfaPolicy": "OTP", "status": 1, "sort": 2}],
        },
    )
    assert api.data("get-user-mfa-info", {"userId": user_id}) == {
        "totpStatus": "enabled",
        "faceMfaStatus": "disabled",
        "smsMfaStatus": "enabled",
        "emailMfaStatus": "disabled",
    }


def test_control_api_shows_a_users_mfa(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """GET /_emulator/users/<id>/mfa returns the stored trigger data; unknown ids are HTTP 404."""
    mine = api.session.get(f"{server.url}/_emulator/users/{ids['fin.frank']}/mfa", timeout=5)
    assert mine.json()["applicationMfa"] == [{"mfaPolicy": "SMS", "status": 1, "sort": 0}]
    assert mine.json()["mfaPhone"] == "13800138006"
    assert api.session.get(f"{server.url}/_emulator/users/{'0' * 24}/mfa", timeout=5).status_code == 404
