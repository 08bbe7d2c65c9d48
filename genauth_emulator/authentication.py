"""Management API authentication (contract §2.2-2.3): issuing tokens at `get-management-token` and checking
`authorization: Bearer <token>` plus the user-pool header on every other `/api/v3/*` call. Used by `app.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genauth_emulator.parsing import ApiCall, json_object
from genauth_emulator.responses import ApiError
from genauth_emulator.state import EmulatorState

TOKEN_ENDPOINT = "get-management-token"  # noqa: S105 - an endpoint name, not a secret
USERPOOL_HEADERS = ("x-genauth-userpool-id", "x-authing-userpool-id")


def get_management_token(call: ApiCall) -> dict[str, Any]:
    """Exchange the pool's AK/SK for a management token; wrong ones get statusCode 401."""
    body = json_object(call.body)
    access_key_id, access_key_secret = body.get("accessKeyId"), body.get("accessKeySecret")
    if not isinstance(access_key_id, str) or not isinstance(access_key_secret, str):
        raise ApiError(400, "accessKeyId and accessKeySecret are required strings")
    issued = call.state.issue_token(access_key_id, access_key_secret)
    if issued is None:
        raise ApiError(401, "Invalid accessKeyId or accessKeySecret")
    access_token, expires_in = issued
    return {"access_token": access_token, "expires_in": expires_in}


def check_authorization(state: EmulatorState, headers: Mapping[str, str]) -> None:
    """Raise `ApiError` 401 for a missing, unknown or expired token, 403 for a foreign user-pool header."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Not logged in: send authorization: Bearer <management token>")
    problem = state.check_token(token.strip())
    if problem:
        raise ApiError(401, problem)
    for name in USERPOOL_HEADERS:
        userpool_id = headers.get(name)
        if userpool_id is not None and userpool_id != state.userpool_id:
            raise ApiError(403, f"{name} does not match the user pool of this token")
