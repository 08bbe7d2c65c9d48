"""Management tokens: how they are issued, what they contain, when they stop working, and how every other
endpoint checks them (statusCode 401 / 403 inside HTTP 200)."""

from __future__ import annotations

import base64
import json

import pytest

from genauth_emulator import EmulatorServer, EmulatorState
from genauth_emulator.tokens import mint_management_token
from tests.support.emulator import Api
from tests.support.factories import FakeClock


def _claims(token: str) -> dict[str, object]:
    """Decode the payload the way the GenAuth SDK does: standard base64 after padding."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.b64decode(payload))  # type: ignore[no-any-return]


def test_token_is_a_jwt_scoped_to_the_pool(api: Api, server: EmulatorServer) -> None:
    """The token carries scoped_userpool_id, iat, exp (iat + expires_in) and a jti; expires_in defaults to 7200."""
    answer = api.token()
    assert answer.status_code == 200
    envelope = answer.json()
    assert envelope["statusCode"] == 200
    token, expires_in = envelope["data"]["access_token"], envelope["data"]["expires_in"]
    claims = _claims(token)
    assert expires_in == 7200
    assert claims["scoped_userpool_id"] == server.state.userpool_id
    assert claims["exp"] == claims["iat"] + 7200  # type: ignore[operator]
    assert claims["jti"]
    assert len(token.split(".")) == 3


def test_token_payloads_never_contain_url_safe_only_characters() -> None:
    """Payload segments contain no `-` or `_`, which the SDK's standard-base64 decoding cannot read."""
    for index in range(300):
        token = mint_management_token(
            userpool_id=f"{index:024x}", access_key_id="ak?~>", now=1_760_000_000 + index, lifetime=7200, key=b"k"
        )
        payload = token.split(".")[1]
        assert "-" not in payload and "_" not in payload
        assert _claims(token)["access_key_id"] == "ak?~>"


def test_wrong_credentials_get_401_inside_http_200(api: Api) -> None:
    """A wrong secret or key id is statusCode 401 with HTTP 200 and no data."""
    for key_id, secret in (("not-the-pool", None), (None, "wrong")):
        answer = api.token(access_key_id=key_id, access_key_secret=secret)
        assert answer.status_code == 200
        assert answer.json()["statusCode"] == 401
        assert "data" not in answer.json()


def test_token_request_without_credentials_is_400(api: Api, server: EmulatorServer) -> None:
    """A token request without both keys is statusCode 400."""
    answer = api.session.post(f"{server.url}/api/v3/get-management-token", json={}, timeout=5)
    assert answer.json()["statusCode"] == 400


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz"],
)
def test_calls_without_a_valid_bearer_token_get_401(api: Api, ids: dict[str, str], authorization: str | None) -> None:
    """Missing, malformed or unknown tokens are statusCode 401 with HTTP 200."""
    headers = {} if authorization is None else {"authorization": authorization}
    answer = api.get("get-user", {"userId": ids["fin.alice"]}, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["statusCode"] == 401


def test_tokens_expire_after_their_lifetime(
    api: Api, server: EmulatorServer, clock: FakeClock, ids: dict[str, str]
) -> None:
    """A token works until expires_in seconds have passed, then gets statusCode 401."""
    server.state.token_lifetime = 60
    headers = api.bearer()
    assert api.token().json()["data"]["expires_in"] == 60
    clock.advance(59)
    assert api.get("get-user", {"userId": ids["fin.alice"]}, headers=headers).json()["statusCode"] == 200
    clock.advance(1)
    expired = api.get("get-user", {"userId": ids["fin.alice"]}, headers=headers).json()
    assert expired["statusCode"] == 401
    assert "expired" in expired["message"]


def test_revoked_tokens_are_rejected_and_new_ones_work(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """revoke_tokens() invalidates every token issued so far; a fresh token works."""
    headers = api.bearer()
    server.state.revoke_tokens()
    assert api.get("get-user", {"userId": ids["fin.alice"]}, headers=headers).json()["statusCode"] == 401
    fresh = {"authorization": f"Bearer {api.token().json()['data']['access_token']}"}
    assert api.get("get-user", {"userId": ids["fin.alice"]}, headers=fresh).json()["statusCode"] == 200


def test_userpool_header_must_match_the_pool(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """x-genauth-userpool-id or x-authing-userpool-id naming another pool is statusCode 403; the right one is fine."""
    params = {"userId": ids["fin.alice"]}
    for header in ("x-genauth-userpool-id", "x-authing-userpool-id"):
        wrong = {**api.bearer(), header: "ffffffffffffffffffffffff"}
        right = {**api.bearer(), header: server.state.userpool_id}
        assert api.get("get-user", params, headers=wrong).json()["statusCode"] == 403
        assert api.get("get-user", params, headers=right).json()["statusCode"] == 200


def test_unknown_api_paths_are_http_404(api: Api) -> None:
    """A path the emulator does not implement is HTTP 404 with a GenAuth-style body."""
    answer = api.get("no-such-endpoint")
    assert answer.status_code == 404
    assert answer.json()["statusCode"] == 404


def test_state_validates_its_settings() -> None:
    """set_mode accepts only replace/merge and token_lifetime must not be negative."""
    state = EmulatorState()
    with pytest.raises(ValueError):
        state.set_mode = "append"
    with pytest.raises(ValueError):
        state.token_lifetime = -1
    assert state.access_key_id == state.userpool_id
