"""GenAuth failures, typed by what the caller should do next.

    ServiceError
    └── GenAuthError                      what GenAuth said: endpoint, statusCode, apiCode, requestId
        ├── GenAuthUnavailableError       TemporaryError: network error, timeout, HTTP or statusCode 5xx,
        │   │                             unreadable answer
        │   ├── GenAuthRateLimitedError   HTTP 429 or statusCode 429 (ThrottleError); honour ``retry_after``
        │   ├── GenAuthAnswerLostError    a write was sent but its answer never came: it may have been applied
        │   └── GenAuthEmptyAnswerError   ``data`` null or empty where GenAuth must have data (MFA of a user)
        ├── GenAuthAuthenticationError    TemporaryError: credentials refused even after a fresh token (an
        │                                 operator must fix them)
        └── GenAuthRefusedError           PermanentError: GenAuth answered, and said no
            ├── GenAuthNotFoundError      statusCode 404 from an endpoint about something else
            │   └── GenAuthUserNotFoundError  apiCode 2004, or 404 from a user endpoint: the user is gone
            └── GenAuthRequestError       any other refusal (400, 403, 409, 422 …): the request is wrong

GenAuth answers HTTP 200 for business errors and puts the real status in the body's ``statusCode``; both
levels map here (``service.genauth.client``). Every error is built the same way, ``Error(endpoint, problem,
status_code=…, api_code=…, request_id=…, retry_after=…)``, and its message carries the endpoint, the codes and
the request id, and at most ``MESSAGE_MAX`` characters of GenAuth's own message, so a response body never
floods a log.
"""

from __future__ import annotations

from service.errors import PermanentError, ServiceError, TemporaryError

MESSAGE_MAX = 200


class GenAuthError(ServiceError, reason="genauth"):
    """GenAuth failed or refused the request."""

    def __init__(
        self,
        endpoint: str,
        problem: str,
        *,
        status_code: int | None = None,
        api_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.status_code = status_code
        self.api_code = api_code
        self.request_id = request_id
        codes = ", ".join(
            part
            for part in (
                f"statusCode {status_code}" if status_code is not None else "",
                f"apiCode {api_code}" if api_code is not None else "",
                f"requestId {request_id}" if request_id else "",
            )
            if part
        )
        super().__init__(f"GenAuth {endpoint}: {trim(problem)}" + (f" ({codes})" if codes else ""))
        self.retry_after = retry_after
        """GenAuth's ``Retry-After``: the worker honours it for the temporary errors."""


class GenAuthUnavailableError(GenAuthError, TemporaryError, reason="genauth_unavailable"):
    """GenAuth could not be reached or failed; retry later."""


class GenAuthRateLimitedError(GenAuthUnavailableError, reason="genauth_rate_limited"):
    """GenAuth throttled the request; retry after the advised delay."""


class GenAuthAnswerLostError(GenAuthUnavailableError, reason="genauth_answer_lost"):
    """GenAuth received the write but its answer was lost (timeout or dropped connection); it may have applied it."""


class GenAuthEmptyAnswerError(GenAuthUnavailableError, reason="genauth_empty_answer"):
    """GenAuth answered with no data where there must be some; nothing is written from an empty read."""


class GenAuthAuthenticationError(GenAuthError, TemporaryError, reason="genauth_authentication"):
    """GenAuth refused the management credentials; check GENAUTH_ACCESS_KEY_ID and _SECRET."""


class GenAuthRefusedError(GenAuthError, PermanentError, reason="genauth_refused"):
    """GenAuth answered and refused the request: the thing asked about does not exist or the request is wrong."""


class GenAuthNotFoundError(GenAuthRefusedError, reason="genauth_not_found"):
    """GenAuth has no such thing (statusCode 404)."""


class GenAuthUserNotFoundError(GenAuthNotFoundError, reason="genauth_user_not_found"):
    """The user does not exist in GenAuth."""


class GenAuthRequestError(GenAuthRefusedError, reason="genauth_request_refused"):
    """GenAuth refused the request as invalid."""


def trim(text: str, limit: int = MESSAGE_MAX) -> str:
    """Shorten untrusted response text for messages and logs."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
