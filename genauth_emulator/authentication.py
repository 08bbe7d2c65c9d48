"""Management API authentication (docs/genauth.md §2.2-2.3): issuing tokens at `get-management-token`, and
checking every other `/api/v3/*` call, which proves it holds the pool's key in one of two ways:

* `authorization: Bearer <token>` (the Python SDKs), plus an optional user-pool header that must match;
* `authorization: authing <AK>:<signature>` or `GenAuth <AK>:<signature>` (the Node and Java SDKs), checked
  by `credentials.Credentials.check_signature`; a refusal is statusCode 401 with apiCode 1300-1306.

Used by `app.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from werkzeug.datastructures import MultiDict

from genauth_emulator.parsing import ApiCall, json_object
from genauth_emulator.responses import ApiError
from genauth_emulator.signatures import SignatureError, parse_authorization
from genauth_emulator.state import EmulatorState

TOKEN_ENDPOINT = "get-management-token"  # noqa: S105 - an endpoint name, not a secret
USERPOOL_HEADERS = ("x-genauth-userpool-id", "x-authing-userpool-id")
SIGNATURE_STATUS_CODE = 401


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


def check_authorization(
    state: EmulatorState,
    headers: Mapping[str, str],
    method: str = "GET",
    path: str = "",
    args: MultiDict[str, str] | None = None,
    body: Any = None,
) -> None:
    """Raise `ApiError` 401 for a missing, unknown or expired token or a bad signature (with its apiCode),
    403 for a foreign user-pool header. `headers` have lower-case names."""
    value = headers.get("authorization", "")
    try:
        signed = parse_authorization(value)
        if signed is not None:
            state.check_signature(
                signed, method=method, path=path, headers=headers, args=args or MultiDict(), body=body
            )
            return
    except SignatureError as error:
        raise ApiError(SIGNATURE_STATUS_CODE, error.message, error.api_code) from None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Not logged in: send authorization: Bearer <management token> or an AK/SK signature")
    problem = state.check_token(token.strip())
    if problem:
        raise ApiError(401, problem)
    for name in USERPOOL_HEADERS:
        userpool_id = headers.get(name)
        if userpool_id is not None and userpool_id != state.userpool_id:
            raise ApiError(403, f"{name} does not match the user pool of this token")
