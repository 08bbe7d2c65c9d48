"""GenAuth failures, typed by what the caller should do next.

    ServiceError
    ├── TemporaryError
    │   ├── GenAuthUnavailableError       network error, timeout, HTTP 5xx, statusCode 5xx, unreadable answer
    │   │   └── GenAuthRateLimitedError   HTTP 429 or statusCode 429 (ThrottleError); honour ``retry_after``
    │   └── GenAuthAuthenticationError    credentials refused even after a fresh token (operator must fix)
    └── PermanentError
        ├── GenAuthNotFoundError          statusCode 404 from an endpoint about something else
        │   └── GenAuthUserNotFoundError  apiCode 2004, or 404 from a user endpoint: the user is gone
        └── GenAuthRequestError           any other refusal (400, 403, 409, 422 …): the request itself is wrong

GenAuth answers HTTP 200 for business errors and puts the real status in the body's ``statusCode``; both
levels map here. Messages carry the endpoint, codes and request id, and at most ``MESSAGE_MAX`` characters of
GenAuth's own message, so a response body never floods a log.
"""

from __future__ import annotations

from service.errors import PermanentError, TemporaryError

MESSAGE_MAX = 200


class GenAuthError:
    """Mixin carrying what GenAuth said: where, which codes, which request."""

    endpoint: str = ""
    status_code: int | None = None
    api_code: int | None = None
    request_id: str | None = None


class GenAuthUnavailableError(GenAuthError, TemporaryError):
    """GenAuth could not be reached or failed; retry later."""

    reason = "genauth_unavailable"


class GenAuthRateLimitedError(GenAuthUnavailableError):
    """GenAuth throttled the request; retry after the advised delay."""

    reason = "genauth_rate_limited"


class GenAuthAuthenticationError(GenAuthError, TemporaryError):
    """GenAuth refused the management credentials; check GENAUTH_ACCESS_KEY_ID and _SECRET."""

    reason = "genauth_authentication"


class GenAuthNotFoundError(GenAuthError, PermanentError):
    """GenAuth has no such thing (statusCode 404)."""

    reason = "genauth_not_found"


class GenAuthUserNotFoundError(GenAuthNotFoundError):
    """The user does not exist in GenAuth."""

    reason = "genauth_user_not_found"


class GenAuthRequestError(GenAuthError, PermanentError):
    """GenAuth refused the request as invalid."""

    reason = "genauth_request_refused"


def trim(text: str, limit: int = MESSAGE_MAX) -> str:
    """Shorten untrusted response text for messages and logs."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
