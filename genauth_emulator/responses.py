"""What the emulator's management API answers: the GenAuth envelope (docs/genauth.md §2.5) and `ApiError`.

Endpoint modules return `data` or raise `ApiError`; `app.py` wraps either in the envelope and answers HTTP 200,
as GenAuth does for business errors. `Reply` is the transport-neutral answer `app.py` turns into a response.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

SUCCESS_MESSAGE = "Operation successful"
USER_NOT_FOUND_API_CODE = 2004


class ApiError(Exception):
    """A business error: `statusCode`, `message` and, when GenAuth documents one, `apiCode`."""

    def __init__(self, status_code: int, message: str, api_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.api_code = api_code


def user_not_found(user_id: str) -> ApiError:
    """The error GenAuth gives for an unknown user: statusCode 404, apiCode 2004."""
    return ApiError(404, f"User {user_id} does not exist", USER_NOT_FOUND_API_CODE)


def success_envelope(data: Any) -> dict[str, Any]:
    """Wrap `data` in a statusCode 200 envelope."""
    return {"statusCode": 200, "message": SUCCESS_MESSAGE, "requestId": str(uuid.uuid4()), "data": data}


def error_envelope(error: ApiError) -> dict[str, Any]:
    """Build the envelope of a failed call (no `data`; `apiCode` only when there is one)."""
    body: dict[str, Any] = {"statusCode": error.status_code, "message": error.message}
    if error.api_code is not None:
        body["apiCode"] = error.api_code
    body["requestId"] = str(uuid.uuid4())
    return body


@dataclass(frozen=True)
class Reply:
    """An answer before it becomes an HTTP response: status, JSON (dict) or text body, extra headers."""

    http_status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status_code(self) -> int | None:
        """The business `statusCode` in the body, if the body is an envelope."""
        if isinstance(self.body, dict) and isinstance(self.body.get("statusCode"), int):
            return int(self.body["statusCode"])
        return None
